/* sl_loss.h - temperature softmax and the distillation loss (Hinton et al. 2015).
 *
 * Per sample i with student logits z (C classes):
 *
 *   L_i = alpha * T^2 * KL(p_i || softmax(z / T))   where a teacher target p_i exists
 *       + w_ce  * CE(softmax(z), y_i)                where the label y_i is known
 *
 * with w_ce = 1 - alpha when the sample also has a teacher target and
 * w_ce = 1 when it has only a label (a labeled row the teacher has not reached
 * yet). The batch loss is the mean of L_i over the samples that have at least
 * one term; samples with neither contribute nothing. The T^2 factor keeps the
 * soft term's gradient scale independent of T.
 *
 * All routines subtract the row maximum before exponentiating, so logits of
 * +-1e4 stay finite. No allocation; thread-safe on distinct buffers.
 */
#ifndef SL_LOSS_H
#define SL_LOSS_H

#include <stdint.h>

/* p = softmax(z / T), row by row. p may alias z. */
void sl_loss_softmax(float *p /* (B, C) */, const float *z /* (B, C) */,
    int B, int C, float T);

/* lp = log_softmax(z / T), row by row. lp may alias z. */
void sl_loss_log_softmax(float *lp /* (B, C) */, const float *z /* (B, C) */,
    int B, int C, float T);

/* The loss above and its gradient with respect to z, written into dz (B, C)
 * (rows with no term get zeros). pt: teacher distributions at T, or NULL for
 * none; has_t: per-row flag, or NULL meaning every row has a target when pt
 * is given. y: labels, -1 unknown, or NULL for none. Labels must be in
 * [0, C). Returns the batch loss; *counted, when not NULL, gets the number
 * of rows that contributed. */
float sl_loss_kd(const float *z /* (B, C) */, const float *pt /* (B, C) */,
    const uint8_t *has_t /* (B) */, const int32_t *y /* (B) */,
    int B, int C, float T, float alpha, float *dz /* (B, C) */,
    int *counted);

/* Index of the largest value in each row (first on ties). */
void sl_loss_argmax(int32_t *out /* (B) */, const float *z /* (B, C) */,
    int B, int C);

#endif
