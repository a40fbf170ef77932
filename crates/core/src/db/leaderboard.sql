-- One page of a competition's leaderboard for one model version, by effective score (an
-- override, or the model's score), best first, ties by submission id; keyset pagination after
-- ($5, $6). Two ordered reads merged: results without an override in `results_leaderboard`
-- index order, and the few with one. Parameters: $1 competition, $2 model version, $3 min and
-- $4 max effective score, $5 cursor score, $6 cursor submission, $7 limit. Every parameter is
-- always given (no `$n IS NULL OR …`: the first page starts after (+Infinity, the largest uuid),
-- and absent bounds are ∓Infinity), so that the generic plan Postgres settles on for this
-- prepared statement still seeks the index to the cursor instead of filtering from the top.
WITH page AS (
  (SELECT r.submission_id, r.score AS effective_score FROM results r
   WHERE r.competition_id = $1 AND r.model_version = $2
     AND NOT EXISTS (SELECT 1 FROM overrides o WHERE o.submission_id = r.submission_id)
     AND r.score >= $3 AND r.score <= $4 AND (r.score, r.submission_id) < ($5, $6)
   ORDER BY r.score DESC, r.submission_id DESC LIMIT $7)
  UNION ALL
  (SELECT r.submission_id, o.score FROM overrides o JOIN results r ON r.submission_id = o.submission_id
   WHERE r.competition_id = $1 AND r.model_version = $2
     AND o.score >= $3 AND o.score <= $4 AND (o.score, r.submission_id) < ($5, $6)
   ORDER BY o.score DESC, r.submission_id DESC LIMIT $7))
SELECT r.submission_id, s.external_id, r.model_version, r.score, r.overall, r.originality,
       r.color, r.texture, r.composition, r.content, r.scoring, r.uncertainty, r.critique, r.new_tokens, r.timings, r.created_at,
       o.score AS override_score, COALESCE(o.score, r.score) AS effective_score
FROM page p
  JOIN results r ON r.submission_id = p.submission_id AND r.model_version = $2
  JOIN submissions s ON s.id = r.submission_id
  LEFT JOIN overrides o ON o.submission_id = r.submission_id
ORDER BY p.effective_score DESC, p.submission_id DESC LIMIT $7
