#!/usr/bin/env bash
# The command line's refusals and file handling (docs/reliability.md, "Command line"):
# each case runs the normkit binary (or the developer tool normkit-dev, found next to it)
# and checks its exit status, its message and the files it leaves.
# Usage: bash scripts/cli-tests.sh [path/to/normkit]
# (default: builds and uses .build/debug/normkit and normkit-dev). Every file is made in a
# fresh temporary directory; nothing outside it is written.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then
    bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
else
    swift build --product normkit >/dev/null
    swift build --product normkit-dev >/dev/null
    bin=$(swift build --show-bin-path)/normkit
fi
dev=$(dirname "$bin")/normkit-dev
fixtures=$PWD/Tests/NormKitTests/Fixtures
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
failures=0 cases=0

# check NAME STATUS PATTERN -- COMMAND...: STATUS is "ok" (exit 0) or "error" (exit 1 or
# 64: a reported error, not a signal, a trap or the 120 s timeout); PATTERN must occur
# in stdout+stderr.
check() {
    local name=$1 want=$2 pattern=$3; shift 4
    local out status
    out=$(timeout 120 "$@" 2>&1 </dev/null); status=$?
    cases=$((cases + 1))
    local good=1
    case $want in
        ok) [ "$status" = 0 ] || good=0 ;;
        error) [ "$status" = 1 ] || [ "$status" = 64 ] || good=0 ;;
    esac
    if [ -n "$pattern" ] && ! grep -qF -- "$pattern" <<<"$out"; then good=0; fi
    if [ $good = 1 ]; then
        echo "ok    $name"
    else
        failures=$((failures + 1))
        echo "FAIL  $name (exit $status, wanted $want with '$pattern'):"
        printf "%s\n" "$(head -c 2000 <<<"$out")" | sed "s/^/      /"
    fi
}
# expect NAME CONDITION...: a shell test on the files left behind.
expect() {
    local name=$1; shift
    cases=$((cases + 1))
    if "$@"; then echo "ok    $name"; else failures=$((failures + 1)); echo "FAIL  $name"; fi
}

# A safetensors file from a JSON header and raw data bytes (printf escapes).
safetensors() {
    local out=$1 header=$2 data=$3
    local n=${#header}
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8 & 255)) $((n >> 16 & 255)) $((n >> 24 & 255)))" > "$out"
    printf '%s' "$header" >> "$out"
    printf "$data" >> "$out"
}

W=$fixtures/gpt2_small_shaped.safetensors
X=$fixtures/gpt2_activations.npy
cp "$W" w.safetensors
cp "$X" x.npy
apply=("$bin" apply --weights w.safetensors --prefix h.0.ln_1)

# --- writing files
check "apply writes a new file" ok "h.0.ln_1" -- "${apply[@]}" --input x.npy --output y.npy
cp y.npy expected.npy
ln -s real.npy link.npy && cp x.npy real.npy
check "apply through a symlink" ok "" -- "${apply[@]}" --input x.npy --output link.npy
expect "  ... the link stays a link" test -L link.npy
expect "  ... its target holds the result" cmp -s real.npy expected.npy
chmod 600 expected.npy && cp -p expected.npy private.npy
check "apply over a 0600 file" ok "" -- "${apply[@]}" --input x.npy --output private.npy
expect "  ... keeps mode 600" test "$(stat -c %a private.npy)" = 600
cp x.npy ro.npy && chmod 444 ro.npy
check "apply over a read-only file is refused" error "read-only" -- "${apply[@]}" --input x.npy --output ro.npy
expect "  ... the file is untouched" cmp -s ro.npy x.npy
expected_sum=$(sha256sum < expected.npy)
check "a trailing slash is an error" error "Not a directory" -- "${apply[@]}" --input x.npy --output expected.npy/
expect "  ... the file is untouched (same SHA-256)" test "$(sha256sum < expected.npy)" = "$expected_sum"
mkdir adir
check "a directory is an error" error "Is a directory" -- "${apply[@]}" --input x.npy --output adir
mkfifo fifo
(timeout 20 cat fifo > from-fifo.npy) &
check "apply into a FIFO streams" ok "" -- "${apply[@]}" --input x.npy --output fifo
wait
expect "  ... the FIFO stays a FIFO" test -p fifo
expect "  ... the reader got the result" cmp -s from-fifo.npy expected.npy
if mknod nulldev c 1 3 2>/dev/null; then
    check "apply into a character device" ok "" -- "${apply[@]}" --input x.npy --output nulldev
    expect "  ... it stays a device" test -c nulldev
else
    echo "SKIP apply into a character device: mknod needs root (uid $(id -u))"
fi
check "--output - writes stdout" ok "" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input x.npy --output - > stdout.npy"
expect "  ... the bytes are the result" cmp -s stdout.npy expected.npy
check "--input - reads stdin" ok "" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input - --output stdin-out.npy < x.npy"
expect "  ... the result is the same" cmp -s stdin-out.npy expected.npy
check "--input - --output - (a pipe)" ok "" -- bash -c "cat x.npy | '$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input - --output - | cat > piped.npy"
expect "  ... the result is the same" cmp -s piped.npy expected.npy

# --- an output that is an input
cp w.safetensors w-copy.safetensors
check "--output naming --weights is refused" error "same file as --weights" -- "${apply[@]}" --input x.npy --output w.safetensors
expect "  ... the weights are untouched" cmp -s w.safetensors w-copy.safetensors
ln -s x.npy x-link.npy; ln x.npy x-hard.npy
check "--output: a symlink to --input is refused" error "same file as --input" -- "${apply[@]}" --input x.npy --output x-link.npy
check "--output: a hard link to --input is refused" error "same file as --input" -- "${apply[@]}" --input x.npy --output x-hard.npy
check "--output - redirected to --input is refused" error "standard output is the same file as --input" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input x.npy --output - >> x.npy"
expect "  ... the input is untouched" cmp -s x.npy "$X"

# --- eps and misplaced files
check "--eps 1e-50 names the value" error "--eps 1e-50 is below Float's smallest positive value" -- "${apply[@]}" --input x.npy --output e.npy --eps 1e-50
check "--eps -1 is a value, refused as negative" error "--eps must be > 0" -- "${apply[@]}" --input x.npy --output e.npy --eps -1
check "--eps abc" error "--eps must be a finite number" -- "${apply[@]}" --input x.npy --output e.npy --eps abc
check "an .npy file as --weights" error "looks like an .npy file" -- "$bin" apply --weights x.npy --prefix h.0.ln_1 --input x.npy --output e.npy
expect "  ... nothing was written" test ! -e e.npy

# --- numeric flags, checked before allocating
check "demo --batch/--seq overflow" error "--batch 99999999999 --seq 99999999999" -- "$bin" demo --batch 99999999999 --seq 99999999999
check "demo beyond memory" error "of memory" -- "$bin" demo --batch 2000000 --seq 1000
check "demo --batch -1" error "--batch must be >= 0, got -1" -- "$bin" demo --batch -1
check "bench --shape overflow" error "--shape 99999999999,99999999999,768" -- "$dev" bench --shape 99999999999,99999999999,768
check "bench --shape beyond memory" error "of memory" -- "$dev" bench --shape 2000000000,768
check "bench --shape 1,,768" error "item 2 of '1,,768' is an empty item" -- "$dev" bench --shape 1,,768
check "bench --shape 768," error "is an empty item" -- "$dev" bench --shape 768,
check "accuracy --dims 768,abc" error "item 2 of '768,abc' is 'abc'" -- "$dev" accuracy --dims 768,abc
check "accuracy --dims beyond memory" error "--dims 99999999999 needs" -- "$dev" accuracy --dims 99999999999

# --- the shipped command holds no developer tools and no test support
check "normkit bench is not a command" error "Unexpected argument 'bench'" -- "$bin" bench
expect "  ... normkit links no NormKitTesting symbol" bash -c "! grep -q 14NormKitTesting '$bin'"
check "normkit-dev has them" ok "leak-check" -- "$dev" --help

# --- inspect: long names and control characters
long=$(head -c 100000 /dev/zero | tr '\0' 'a')
safetensors long.safetensors "{\"$long\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"__metadata__\":{\"k\":\"\\u001b[31mred\"}}" '\x00\x00\x80\x3f'
check "inspect: a 100000-character name" ok "characters)" -- "$bin" inspect long.safetensors
out_size=$("$bin" inspect long.safetensors | wc -c)
expect "  ... output bounded by the input ($out_size bytes for $(stat -c %s long.safetensors))" test "$out_size" -lt "$(stat -c %s long.safetensors)"
expect "  ... no raw escape character" bash -c "! '$bin' inspect long.safetensors | grep -q $'\x1b'"
check "  ... the escape is shown escaped" ok '\u{1B}[31mred' -- "$bin" inspect long.safetensors

# --- ambiguous parameter names
safetensors mixed.safetensors '{"ln.weight":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"ln.beta":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' '\x00\x00\x80\x3f\x00\x00\x00\x00'
check "apply: ln.weight + ln.beta is ambiguous" error "ambiguous" -- "$bin" apply --weights mixed.safetensors --prefix ln --input "$fixtures/f4_2x3.npy" --output m.npy
check "inspect agrees" ok "ambiguous" -- "$bin" inspect mixed.safetensors

# --- inspect lists as loadable only what apply loads; float64 beyond Float's range
safetensors f8.safetensors '{"ln.weight":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]},"ln.bias":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}' '\x38\x38\x00\x00\x00\x00\x00\x00\x00\x00'
check "inspect: an F8_E4M3 weight is not loadable" ok "not loadable: unsupported safetensors content: tensor 'ln.weight' has dtype F8_E4M3" -- "$bin" inspect f8.safetensors
check "  ... and apply agrees" error "has dtype F8_E4M3" -- "$bin" apply --weights f8.safetensors --prefix ln --input "$fixtures/f4_2x3.npy" --output f8.npy
safetensors ln2.safetensors '{"ln.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"ln.bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}' '\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x00\x00\x00\x00\x00\x00'
check "inspect: an F32 layer is loadable" ok "F32   dim 2, weight and bias: LayerNorm" -- "$bin" inspect ln2.safetensors
# A <f8 array [[1e300, 1.0], [1.0, 2.0]]: 1e300 does not fit a Float.
header="{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }"
printf '\x93NUMPY\x01\x00'"$(printf '\\x%02x\\x00' $(( ${#header} + 1 )))" > big.npy
printf '%s\n' "$header" >> big.npy
printf '\x9c\x75\x00\x88\x3c\xe4\x37\x7e\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\xf0\x3f\x00\x00\x00\x00\x00\x00\x00\x40' >> big.npy
check "apply: a float64 input of 1e300 is refused" error "element 0 is a float64 beyond Float's range" -- "$bin" apply --weights ln2.safetensors --prefix ln --input big.npy --output big-out.npy
expect "  ... nothing was written" test ! -e big-out.npy
check "  ... --allow-overflow reads it as infinity" ok "ln: " -- "$bin" apply --weights ln2.safetensors --prefix ln --input big.npy --output big-out.npy --allow-overflow
check "  ... an output of the input's shape" ok "[2, 2]" -- "$bin" inspect big-out.npy

# --- outputs that are standard output (issue 19: the summary went into the .npy stream)
check "--output /dev/stdout is written as -" ok "" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input x.npy --output /dev/stdout > as-stdout.npy"
expect "  ... the bytes are the result, no summary in them" cmp -s as-stdout.npy expected.npy
ln -s /proc/self/fd/1 fd1-link
check "--output: a symlink to /proc/self/fd/1 is written as -" ok "" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input x.npy --output fd1-link | cat > via-link.npy"
expect "  ... the piped bytes are the result" cmp -s via-link.npy expected.npy
check "--output naming the file stdout goes to" ok "" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input x.npy --output same.npy > same.npy"
expect "  ... the file holds only the result" cmp -s same.npy expected.npy

# --- write errors on stdout: an I/O error, exit 1, never success
check "inspect > /dev/full" error "standard output: No space left on device" -- bash -c "'$bin' inspect w.safetensors > /dev/full"
check "demo > /dev/full" error "standard output: No space left on device" -- bash -c "'$bin' demo --batch 1 --seq 3 > /dev/full"
check "accuracy > /dev/full" error "standard output: No space left on device" -- bash -c "'$dev' accuracy --dims 5 --seeds 1 > /dev/full"
check "bench --json > /dev/full" error "standard output: No space left on device" -- bash -c "'$dev' bench --shape 2,16 --iterations 3 --json > /dev/full"
check "apply's summary > /dev/full" error "standard output: No space left on device" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input x.npy --output full-summary.npy > /dev/full"
check "apply --output - > /dev/full is an I/O error (exit 1)" error "standard output: No space left on device" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input x.npy --output - > /dev/full; s=\$?; [ \$s = 1 ] && exit 1; exit 3"
check "apply --output /dev/full (a device that fails)" error "/dev/full: No space left on device" -- "${apply[@]}" --input x.npy --output /dev/full
check "--help > /dev/full" error "standard output: No space left on device" -- bash -c "'$bin' apply --help > /dev/full"

# --- inputs: pipes, FIFOs, /dev/fd/N, /dev/stdin; magic first; reads bounded by the header
check "--input <(cat x.npy)" ok "" -- bash -c "'$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input <(cat x.npy) --output pipe-in.npy"
expect "  ... the result is the same" cmp -s pipe-in.npy expected.npy
check "--weights <(cat w.safetensors)" ok "" -- bash -c "'$bin' apply --weights <(cat w.safetensors) --prefix h.0.ln_1 --input x.npy --output pipe-w.npy"
expect "  ... the result is the same" cmp -s pipe-w.npy expected.npy
check "--input /dev/stdin" ok "" -- bash -c "cat x.npy | '$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input /dev/stdin --output devstdin.npy"
expect "  ... the result is the same" cmp -s devstdin.npy expected.npy
mkfifo in-fifo
(timeout 20 cat x.npy > in-fifo) &
check "--input a FIFO" ok "" -- "${apply[@]}" --input in-fifo --output fifo-in.npy
wait
expect "  ... the result is the same" cmp -s fifo-in.npy expected.npy
check "inspect a pipe" ok "safetensors, 88 tensors" -- bash -c "'$bin' inspect <(cat w.safetensors)"
check "inspect /dev/zero is refused at once" error "invalid safetensors file" -- "$bin" inspect /dev/zero
check "--input - < /dev/zero stops at the magic" error "not a .npy file" -- bash -c "ulimit -v 2000000; '$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input - --output z.npy < /dev/zero"
check "--weights /dev/zero stops at the header" error "invalid safetensors file" -- "$bin" apply --weights /dev/zero --prefix h.0.ln_1 --input x.npy --output z.npy
# A valid header followed by endless data: read up to what it declares and one byte.
check "--input - with endless data after the header" error "bytes follow" -- bash -c "cat x.npy /dev/zero | (ulimit -v 2000000; '$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input - --output z.npy)"
check "--weights with endless data after the header" error "belong to no tensor" -- bash -c "'$bin' apply --weights <(cat w.safetensors /dev/zero) --prefix h.0.ln_1 --input x.npy --output z.npy"
expect "  ... nothing was written" test ! -e z.npy
# A working directory longer than PATH_MAX (4096): relative paths still work.
deep=$PWD; seg=$(head -c 200 /dev/zero | tr '\0' 'd')
check "a working directory longer than PATH_MAX" ok "" -- bash -c "for i in \$(seq 25); do mkdir -p $seg && cd $seg || exit 9; done; cp '$deep/w.safetensors' '$deep/x.npy' . && '$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input x.npy --output deep.npy && cmp -s deep.npy '$deep/expected.npy' && '$bin' inspect x.npy"

# --- float16 in, float16 out (issue 18): a <f2 input is normalised by the half form and
# written as <f2, which must be the float32 output of the same input rounded once to
# float16 (round to nearest even, Python's struct 'e'); --output-dtype f4 writes <f4.
python3 - <<'PY'
import struct
def load(path):
    b = open(path, 'rb').read()
    n = struct.unpack('<H', b[8:10])[0]
    return b[10:10 + n].decode(), b[10 + n:]
header, data = load('x.npy')
xs = struct.unpack('<%df' % (len(data) // 4), data)
h = header.replace("'<f4'", "'<f2'")
h = h.rstrip('\n').rstrip(' ')
h += ' ' * (-(10 + len(h) + 1) % 64) + '\n'
open('x16.npy', 'wb').write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(h)) + h.encode() + struct.pack('<%de' % len(xs), *xs))
PY
check "apply on a <f2 input" ok "float16" -- "${apply[@]}" --input x16.npy --output y16.npy
check "apply --output-dtype f4 on a <f2 input" ok "float32" -- "${apply[@]}" --input x16.npy --output y16as32.npy --output-dtype f4
check "apply --output-dtype nope" error "output-dtype" -- "${apply[@]}" --input x16.npy --output bad.npy --output-dtype nope
expect "  ... the float16 output is the float32 output rounded once" python3 -c "
import struct, sys
def body(path, dtype):
    b = open(path, 'rb').read()
    n = struct.unpack('<H', b[8:10])[0]
    assert (\"'descr': '%s'\" % dtype) in b[10:10 + n].decode(), path
    return b[10 + n:]
h = body('y16.npy', '<f2'); f = body('y16as32.npy', '<f4')
y16 = struct.unpack('<%dH' % (len(h) // 2), h)
y32 = struct.unpack('<%df' % (len(f) // 4), f)
bad = [i for i, (a, b) in enumerate(zip(y16, y32)) if a != struct.unpack('<H', struct.pack('<e', b))[0]]
sys.exit(1 if bad or len(y16) != len(y32) or not y16 else 0)
"

# --- memory: RLIMIT_AS is a limit; a refusal is a message, never a signal
check "demo under ulimit -v 3000000 (issue 19's case)" error "ulimit -v" -- bash -c "ulimit -v 3000000; '$bin' demo --batch 1 --seq 1 --dim 200000000"
check "demo just over ulimit -v 1500000" error "ulimit -v" -- bash -c "ulimit -v 1500000; '$bin' demo --batch 1 --seq 1 --dim 60000000"
check "bench under ulimit -v 1500000" error "ulimit -v" -- bash -c "ulimit -v 1500000; '$dev' bench --shape 60000000"
check "accuracy under ulimit -v 1500000" error "ulimit -v" -- bash -c "ulimit -v 1500000; '$dev' accuracy --dims 30000000"
python3 -c "
import struct
h=\"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 50000000, 8), }\"
h+=' '*(-(10+len(h)+1)%64)+'\n'
open('big-header.npy','wb').write(b'\x93NUMPY\x01\x00'+struct.pack('<H',len(h))+h.encode())
"
check "a stream declaring more than the memory budget" error "header declares" -- bash -c "cat big-header.npy /dev/zero | (ulimit -v 1500000; '$bin' apply --weights w.safetensors --prefix h.0.ln_1 --input - --output z.npy)"

# --- flags: negative numbers, invalid values naming the flag, conflicts, duplicates, limits
check "demo --seed -1 is a value, refused with its range" error "--seed must be a whole number in 0...18446744073709551615, got '-1'" -- "$bin" demo --seed -1
check "bench --input-mean -5 is a legitimate mean" ok "" -- "$dev" bench --shape 2,16 --iterations 3 --input-mean -5
check "bench --seed -2" error "--seed must be a whole number" -- "$dev" bench --shape 2,16 --seed -2
check "bench --threads -3" error "--threads must be in 1...256, got -3" -- "$dev" bench --shape 2,16 --threads -3
check "bench --gap-us -1" error "--gap-us must be in 0...100000, got -1" -- "$dev" bench --shape 2,16 --gap-us -1
check "accuracy --dims -1: a range error" error "--dims items must be >= 1; item 1 of '-1' is -1" -- "$dev" accuracy --dims -1
check "accuracy --seeds -4: a range error" error "--seeds must be in 1...10000, got -4" -- "$dev" accuracy --seeds -4
check "--weight-offset -1 with --kind rms is a value" ok "weightOffset: -1.0" -- "$bin" apply --kind rms --weight-offset -1 --weights "$fixtures/llama_f32.safetensors" --prefix model.norm --input "$fixtures/llama_activations.npy" --output wo-ok.npy
check "--weight-offset nan names the flag" error "--weight-offset must be a finite number" -- "${apply[@]}" --kind rms --weight-offset nan --input x.npy --output wo.npy
check "bench --input-mean inf names the flag" error "--input-mean must be a finite number" -- "$dev" bench --shape 2,16 --input-mean inf
check "--weight-offset with --kind layer is an error" error "--weight-offset applies to an RMSNorm only" -- "${apply[@]}" --kind layer --weight-offset 1 --input x.npy --output wo.npy
check "--weight-offset without --kind is an error" error "--weight-offset applies to an RMSNorm only" -- "${apply[@]}" --weight-offset 1 --input x.npy --output wo.npy
check "bench --input-mean with --data rand" error "--input-mean applies to --data normal only" -- "$dev" bench --shape 2,16 --input-mean 3 --data rand
check "bench --gpt2-like with --data offset" error "ask for different inputs" -- "$dev" bench --shape 2,16 --gpt2-like --data offset
check "a duplicated --weights" error "--weights is given more than once" -- "${apply[@]}" --weights x.npy --input x.npy --output wo.npy
check "a duplicated --seed=" error "--seed is given more than once" -- "$bin" demo --seed=1 --seed 2
check "accuracy --backward --rms --fused" error "--backward, --rms, --fused are different checks" -- "$dev" accuracy --backward --rms --fused
check "accuracy --fused --seeds" error "takes no --seeds" -- "$dev" accuracy --fused --seeds 3
check "leak-check --iterations -5: a range error" error "--iterations must be in 1...100000000, got -5" -- "$dev" leak-check --iterations -5
check "leak-check --rss-limit-kib -1: a range error" error "--rss-limit-kib must be in 0..." -- "$dev" leak-check --rss-limit-kib -1
check "bench --iterations 99999999999999 before any work" error "--iterations must be in 1...1000000" -- "$dev" bench --iterations 99999999999999
check "accuracy --seeds 99999999999" error "--seeds must be in 1...10000" -- "$dev" accuracy --seeds 99999999999
expect "  ... no flag case wrote a file" test ! -e wo.npy

# --- terminal injection: every name, prefix and path in an error is sanitised and capped
esc=$'\e]0;pwned\a'
check "apply --prefix with an OSC escape" error 'h.\u{1B}]0;pwned\u{7}' -- "$bin" apply --weights w.safetensors --prefix "h.$esc" --input x.npy --output t.npy
safetensors evil.safetensors "{\"a\\u001b]0;pwned\\u0007\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}" '\x00\x00\x80\x3f\x00\x00\x80\x3f'
check "a tensor name with an escape and bad offsets" error 'a\u{1B}]0;pwned\u{7}' -- "$bin" inspect evil.safetensors
clear=$'\e[2J'
safetensors clear.safetensors "{\"ln\\u001b[2J.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"ln\\u001b[2J.bias\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}" '\x00\x00\x80\x3f\x00\x00\x00\x00'
check "apply --prefix nope lists names escaped" error 'ln\u{1B}[2J' -- "$bin" apply --weights clear.safetensors --prefix nope --input x.npy --output t.npy
check "a path with an escape" error 'no\u{1B}]0;pwned\u{7}such' -- "$bin" apply --weights "no${esc}such" --prefix p --input x.npy --output t.npy
check "an unknown option with an escape" error '\u{1B}[2J' -- "$bin" demo "--x$clear"
huge=$(head -c 1000000 /dev/zero | tr '\0' 'n')
safetensors huge.safetensors "{\"$huge\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,8]}}" '\x00\x00\x80\x3f\x00\x00\x80\x3f'
# (A command-line argument is at most 128 KiB: the prefix is 100,000 characters.)
for cmd in "inspect huge.safetensors" "apply --weights huge.safetensors --prefix nope --input x.npy --output t.npy" "apply --weights w.safetensors --prefix ${huge:0:100000} --input x.npy --output t.npy"; do
    # shellcheck disable=SC2086
    "$bin" $cmd > huge.out 2> huge.err
    size=$(cat huge.out huge.err | wc -c)
    expect "  ... a long name: $(cut -c1-60 <<<"$cmd") says $size bytes, under 20000" test "$size" -lt 20000
    expect "  ... and no raw escape" bash -c "! grep -q $'\x1b' huge.err huge.out"
done
for f in evil clear; do
    for cmd in "inspect $f.safetensors" "apply --weights $f.safetensors --prefix nope --input x.npy --output t.npy"; do
        # shellcheck disable=SC2086
        expect "  ... no raw escape from: ${cmd}" bash -c "! '$bin' $cmd 2>&1 | grep -q $'\x1b'"
    done
done

echo "$((cases - failures)) of $cases CLI checks passed"
[ $failures = 0 ]
