-- How each result's scores were made (`head`: the trained regression head; `zero-shot`: the
-- language model's level-word probabilities, Q-Align) and, for zero-shot scores, each output's
-- uncertainty: the standard deviation of the level distribution on the 1–100 scale, as
-- {"overall": …, "originality": …, "color": …, "texture": …, "composition": …, "content": …}.
ALTER TABLE results
    ADD COLUMN scoring text NOT NULL DEFAULT 'head' CHECK (scoring IN ('head', 'zero-shot')),
    ADD COLUMN uncertainty jsonb CHECK (uncertainty IS NULL OR jsonb_typeof(uncertainty) = 'object');
