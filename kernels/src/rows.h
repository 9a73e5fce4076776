// Internal: dispatched row helpers shared between kernel families.
#pragma once
#include <cstdint>

// In place over row[0, n): row = softmax(row); the sum is accumulated in double. n == 0 is a no-op.
void wct_softmax_row(float* row, int64_t n);
// dx[0, n) = y * (dy - sum(dy * y)); dx may alias dy.
void wct_softmax_backward_row(const float* y, const float* dy, float* dx, int64_t n);

// Column reductions (dw, db) run over tiles of this many columns, one tile per task, so they are
// race-free and do not depend on the thread count.
constexpr int64_t WCT_COL_TILE = 256;
