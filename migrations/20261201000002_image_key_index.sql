-- The orphan sweep asks whether any submission still refers to an object.
CREATE INDEX submissions_image_key ON submissions (image_key);
