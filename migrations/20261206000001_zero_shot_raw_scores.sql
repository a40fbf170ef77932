-- A zero-shot result's raw scores: each output's expected level on 1–100 *before* the
-- checkpoint's calibration, as {"overall": …, "originality": …, …}. A jury round fits a
-- calibration on these (GET /v1/competitions/{slug}/rounds/{round}/calibration), whatever
-- calibration served the result; fitting on served scores would stack one map on another.
-- Null for head results, and for zero-shot results stored before this column existed.
ALTER TABLE results
    ADD COLUMN raw_scores jsonb CHECK (raw_scores IS NULL OR jsonb_typeof(raw_scores) = 'object');
