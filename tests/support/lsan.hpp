// LeakSanitizer's switch, for tests that leak on purpose (a heap destroyed
// with objects still allocated): CBT_HAVE_LSAN is defined when it is there.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define CBT_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CBT_HAVE_LSAN 1
#endif
#endif
#ifdef CBT_HAVE_LSAN
#include <sanitizer/lsan_interface.h>
#endif
