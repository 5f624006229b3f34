// poetml C++ core, everything: include this from ROOT macros or CMSSW modules.
// Header-only C++17 (link with -pthread); no Python anywhere.
#pragma once

#include "poetml/cleaning.hpp"
#include "poetml/core.hpp"
#include "poetml/emulate.hpp"
#include "poetml/features.hpp"
#include "poetml/rasterize.hpp"
