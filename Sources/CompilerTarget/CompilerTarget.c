// Header-only module (CompilerTarget.h); SwiftPM needs one source file in a C target.
#include "CompilerTarget.h"
