// Closes what isa/begin.h opened.
#if NK_ENABLED && NK_LEVEL > 0
#pragma clang attribute pop
#endif
