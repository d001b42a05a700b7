// Header-only module (HalfPrecision.h); SwiftPM needs one source file in a C target.
#include "HalfPrecision.h"
