#ifndef METRONOME_CXGBOOST_SHIM_H
#define METRONOME_CXGBOOST_SHIM_H

// XGBoost's C API (Debian libxgboost-dev): gradient-boosted trees for the kernel-level
// latency predictors.
#include <xgboost/c_api.h>

#endif
