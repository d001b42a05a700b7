// Header-only module (CacheHints.h); SwiftPM needs one source file in a C target.
#include "CacheHints.h"
