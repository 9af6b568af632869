"""Train the ctr-ranker example: a small DeepFM click-through ranker on MovieLens-100k.

The data is the copy of MovieLens-100k that the ``recbole`` wheel bundles (read from the installed
package; never committed). ``pip install --no-deps recbole`` is enough: only the data files are read.

A rating >= 4 counts as a click. Each row becomes

- ``sparse`` INT64 [6]: user, item, age bucket, gender, occupation, release-year bucket, each offset into
  one shared vocabulary (so one ``nn.Embedding`` serves every field),
- ``dense``  FP32 [20]: the item's 19 genre flags and the user's age / 100,

and the model returns ``score`` FP32 [1], the click probability.

Writes, next to this file: ``model.pt2`` (``torch.export.save``, dynamic batch), ``validation.npz``
(held-out rows, arrays named after the inputs) and prints the held-out AUC.

    python examples/ctr-ranker/train.py [--seconds 60] [--seed 0]
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western", "unknown",
]  # fmt: skip
AGE_EDGES = [18, 25, 35, 45, 50, 56]
YEAR_EDGES = [1930, 1950, 1970, 1980, 1990, 1995, 1997]
VALIDATION_ROWS = 512


def dataset_dir() -> Path:
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("recbole is not installed: pip install --no-deps recbole (only its bundled data is read)")
    path = Path(next(iter(spec.submodule_search_locations))) / "dataset_example" / "ml-100k"
    if not path.is_dir():
        raise SystemExit(f"MovieLens-100k not found in the recbole package at {path}")
    return path


def _read(path: Path) -> list[list[str]]:
    lines = path.read_text(encoding="latin-1").splitlines()
    return [line.split("\t") for line in lines[1:] if line]


def load_features() -> tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], list[int]]:
    """Returns (sparse int64 [N, 6], dense float32 [N, 20], label float32 [N], field sizes)."""
    root = dataset_dir()
    users = {row[0]: row for row in _read(root / "ml-100k.user")}
    items = {row[0]: row for row in _read(root / "ml-100k.item")}
    occupations = sorted({row[3] for row in users.values()})
    user_index = {u: i for i, u in enumerate(sorted(users, key=int))}
    item_index = {it: i for i, it in enumerate(sorted(items, key=int))}

    inter = _read(root / "ml-100k.inter")
    n = len(inter)
    fields = [len(user_index), len(item_index), len(AGE_EDGES) + 1, 2, len(occupations), len(YEAR_EDGES) + 1]
    offsets = np.cumsum([0, *fields[:-1]])
    sparse = np.zeros((n, len(fields)), dtype=np.int64)
    dense = np.zeros((n, len(GENRES) + 1), dtype=np.float32)
    label = np.zeros(n, dtype=np.float32)
    for i, (user, item, rating, _) in enumerate(inter):
        urow, irow = users[user], items[item]
        age = int(urow[1])
        year = int(irow[2]) if len(irow) > 2 and irow[2].isdigit() else 1995
        genres = irow[3].split() if len(irow) > 3 else []
        sparse[i] = [
            user_index[user],
            item_index[item],
            int(np.searchsorted(AGE_EDGES, age, side="right")),
            0 if urow[2] == "M" else 1,
            occupations.index(urow[3]),
            int(np.searchsorted(YEAR_EDGES, year, side="right")),
        ]
        for genre in genres:
            if genre in GENRES:
                dense[i, GENRES.index(genre)] = 1.0
        dense[i, -1] = age / 100.0
        label[i] = 1.0 if float(rating) >= 4 else 0.0
    order = np.random.default_rng(1234).permutation(n)  # a fixed shuffle: train / held-out split below
    return (sparse + offsets)[order], dense[order], label[order], fields


class DeepFM(nn.Module):
    """DeepFM: first-order weights + FM pairwise interactions + an MLP over the field embeddings."""

    def __init__(self, vocab: int, fields: int, dense_dim: int, dim: int = 16, hidden: tuple[int, ...] = (128, 64)):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.linear = nn.Embedding(vocab, 1)
        self.dense_proj = nn.Linear(dense_dim, dim)
        self.dense_linear = nn.Linear(dense_dim, 1)
        layers: list[nn.Module] = []
        width = (fields + 1) * dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        nn.init.normal_(self.embedding.weight, std=0.05)
        nn.init.zeros_(self.linear.weight)

    def forward(self, sparse: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        emb = torch.cat([self.embedding(sparse), self.dense_proj(dense).unsqueeze(1)], dim=1)  # [B, F+1, D]
        first = self.linear(sparse).sum(dim=1) + self.dense_linear(dense)  # [B, 1]
        square_of_sum = emb.sum(dim=1).pow(2)
        sum_of_square = emb.pow(2).sum(dim=1)
        fm = 0.5 * (square_of_sum - sum_of_square).sum(dim=1, keepdim=True)  # [B, 1]
        deep = self.mlp(emb.flatten(1))
        return torch.sigmoid(first + fm + deep)


def auc(label: npt.NDArray[Any], score: npt.NDArray[Any]) -> float:
    order = np.argsort(score)
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    positives = label == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="training time budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    sparse, dense, label, fields = load_features()
    split = int(len(label) * 0.8)
    model = DeepFM(vocab=int(sum(fields)), fields=len(fields), dense_dim=dense.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    loss_fn = nn.BCELoss()
    xs, xd, y = torch.from_numpy(sparse[:split]), torch.from_numpy(dense[:split]), torch.from_numpy(label[:split])
    rng = np.random.default_rng(args.seed)
    start, epoch, best_auc, best_state = time.monotonic(), 0, 0.0, copy.deepcopy(model.state_dict())
    while time.monotonic() - start < args.seconds:
        model.train()
        for batch in np.array_split(rng.permutation(split), split // 512):
            index = torch.from_numpy(batch)
            optimiser.zero_grad()
            loss = loss_fn(model(xs[index], xd[index]).squeeze(1), y[index])
            loss.backward()
            optimiser.step()
            if time.monotonic() - start >= args.seconds:
                break
        epoch += 1
        model.eval()
        with torch.no_grad():
            held_out = model(torch.from_numpy(sparse[split:]), torch.from_numpy(dense[split:])).squeeze(1).numpy()
        score = auc(label[split:], held_out)
        print(f"epoch {epoch}: loss {loss.item():.4f}  held-out AUC {score:.4f}")
        if score > best_auc:
            best_auc, best_state = score, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)  # early stopping: keep the epoch with the best held-out AUC
    print(f"best held-out AUC {best_auc:.4f}")

    model.eval()
    example = (torch.from_numpy(sparse[:4]), torch.from_numpy(dense[:4]))
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.export.export(model, example, dynamic_shapes={"sparse": {0: batch}, "dense": {0: batch}})
    args.out.mkdir(parents=True, exist_ok=True)
    torch.export.save(program, args.out / "model.pt2")
    pick = np.random.default_rng(args.seed + 1).choice(np.arange(split, len(label)), VALIDATION_ROWS, replace=False)
    np.savez_compressed(args.out / "validation.npz", sparse=sparse[pick], dense=dense[pick])
    size = (args.out / "model.pt2").stat().st_size
    print(f"wrote {args.out / 'model.pt2'} ({size / 1024:.0f} KiB) and validation.npz ({VALIDATION_ROWS} rows)")


if __name__ == "__main__":
    main()
