"""Training the patch CNN on cached MFCC frames (needs the `train` extra: PyTorch).

A recipe is a named `TrainingRecipe`. `paper` and its AD / SMOTE variants follow
Qin et al. (squared error, SGD lr 0.1, momentum 0.9, nesterov, decay 1e-6,
batch 4); the others are labelled as going beyond the paper.

Shapes: a song's frames are (n_frames, 39); labels (n_songs, n_tags) in {0, 1}.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np

from ..features import FeatureParams, frames_to_patches, song_statistics


def coefficient_mean_std(frames: np.ndarray) -> np.ndarray:
    """Mean and standard deviation of each coefficient over (n_frames, 39) frames, shape (78,)
    float32: the input of the MFCC-statistics baselines and the space in which SMOTE looks
    for neighbours."""
    return np.concatenate([frames.mean(axis=0), frames.std(axis=0)]).astype(np.float32)


@dataclass(frozen=True)
class TrainingRecipe:
    name: str
    loss: str = "bce"  # "mse" (eq. 3), "mse_ad" (eq. 4-5), "bce", "bce_pos"
    optimizer: str = "adam"  # "sgd_paper" or "adam"
    learning_rate: float = 1e-3
    batch_size: int = 64
    epochs: int = 30
    patches_per_song: int = 8  # random excerpts drawn from each song per epoch
    smote: bool = False
    song_pooling: int = 0  # >0: average this many patches' outputs per song before the loss
    gain_db: float = 0.0  # random gain augmentation range (+-dB), acts on MFCC c0
    dropout: float = 0.0  # before the fully connected layer (not in the paper)
    layout: str = "paper"  # what the convolutions slide over (see network.PatchCNN)
    long_frames_per_patch: int = 10  # patch context: 10 long frames = 0.58 s (the paper)
    time_pooling: bool = False  # mean and max over time before the classifier (network.PatchCNN)
    filters: int = 32  # per convolution (the paper: 32)
    mixup: float = 0.0  # >0: mix pairs of patches and their labels, Beta(a, a) weights
    tempo_stretch: float = 0.0  # >0: random tempo change of each excerpt by up to this fraction
    weight_decay: float = 0.0  # L2 penalty (Adam only; not in the paper)
    patience: int = 8  # early stopping on the inner validation split (0: off)
    validation_fraction: float = 0.15
    paper_faithful: bool = False
    seed: int = 0

    def describe(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items() if k != "name")


RECIPES: dict[str, TrainingRecipe] = {
    # Qin et al. Table 3, as written. Epochs count passes over `patches_per_song`
    # random patches per song, not over every patch (see the model card).
    "paper": TrainingRecipe(
        "paper",
        loss="mse",
        optimizer="sgd_paper",
        learning_rate=0.1,
        batch_size=4,
        epochs=30,
        patches_per_song=4,
        patience=0,
        paper_faithful=True,
    ),
    "paper-ad": TrainingRecipe(
        "paper-ad",
        loss="mse_ad",
        optimizer="sgd_paper",
        learning_rate=0.1,
        batch_size=4,
        epochs=30,
        patches_per_song=4,
        patience=0,
        paper_faithful=True,
    ),
    "paper-smote": TrainingRecipe(
        "paper-smote",
        loss="mse",
        optimizer="sgd_paper",
        learning_rate=0.1,
        batch_size=4,
        epochs=30,
        patches_per_song=4,
        smote=True,
        patience=0,
        paper_faithful=True,
    ),
    "paper-ad-smote": TrainingRecipe(
        "paper-ad-smote",
        loss="mse_ad",
        optimizer="sgd_paper",
        learning_rate=0.1,
        batch_size=4,
        epochs=30,
        patches_per_song=4,
        smote=True,
        patience=0,
        paper_faithful=True,
    ),
    # Beyond the paper: cross-entropy, Adam, positive-class weights, early stopping.
    "cnn-bce": TrainingRecipe("cnn-bce", loss="bce"),
    "cnn-bce-pos": TrainingRecipe("cnn-bce-pos", loss="bce_pos"),
    "cnn-bce-pos-smote": TrainingRecipe("cnn-bce-pos-smote", loss="bce_pos", smote=True),
    "cnn-bce-pos-drop": TrainingRecipe("cnn-bce-pos-drop", loss="bce_pos", dropout=0.5, weight_decay=1e-4, gain_db=6.0),
    "cnn-songpool": TrainingRecipe(
        "cnn-songpool", loss="bce_pos", song_pooling=8, batch_size=4, patches_per_song=8, gain_db=6.0
    ),
    # Beyond the paper: the same patches, convolved as 3 x 13 x 50 (see network.PatchCNN);
    # "pool": mean and max over time before the classifier; "ctxN": N long frames per patch.
    "cnn-tf-pos": TrainingRecipe("cnn-tf-pos", loss="bce_pos", layout="time_frequency"),
    "cnn-tf-pos-drop": TrainingRecipe(
        "cnn-tf-pos-drop", loss="bce_pos", dropout=0.5, weight_decay=1e-4, gain_db=6.0, layout="time_frequency"
    ),
    "cnn-tf-pos-ctx20": TrainingRecipe(
        "cnn-tf-pos-ctx20", loss="bce_pos", layout="time_frequency", long_frames_per_patch=20
    ),
    "cnn-tf-pos-ctx50": TrainingRecipe(
        "cnn-tf-pos-ctx50", loss="bce_pos", layout="time_frequency", long_frames_per_patch=50
    ),
    "cnn-tf-pool": TrainingRecipe("cnn-tf-pool", loss="bce_pos", layout="time_frequency", time_pooling=True),
    "cnn-tf-pool-ctx20": TrainingRecipe(
        "cnn-tf-pool-ctx20", loss="bce_pos", layout="time_frequency", time_pooling=True, long_frames_per_patch=20
    ),
    "cnn-tf-pool-f64": TrainingRecipe(
        "cnn-tf-pool-f64", loss="bce_pos", layout="time_frequency", time_pooling=True, filters=64
    ),
    "cnn-tf-pool-mixup": TrainingRecipe(
        "cnn-tf-pool-mixup", loss="bce_pos", layout="time_frequency", time_pooling=True, mixup=0.4
    ),
    "cnn-tf-pool-slow": TrainingRecipe(
        "cnn-tf-pool-slow",
        loss="bce_pos",
        layout="time_frequency",
        time_pooling=True,
        learning_rate=3e-4,
        patches_per_song=16,
    ),
    "cnn-tf-pool-tempo": TrainingRecipe(
        "cnn-tf-pool-tempo", loss="bce_pos", layout="time_frequency", time_pooling=True, tempo_stretch=0.2, gain_db=3.0
    ),
    "cnn-tf-pool-drop": TrainingRecipe(
        "cnn-tf-pool-drop", loss="bce_pos", layout="time_frequency", time_pooling=True, dropout=0.3, gain_db=6.0
    ),
}


# Seed variants: the same recipe from other random starts, as ensemble members.
EXTRA_SEEDS = range(1, 5)
RECIPES.update(
    {
        f"{base}-seed{seed}": replace(RECIPES[base], name=f"{base}-seed{seed}", seed=seed)
        for base in ("cnn-tf-pos", "cnn-tf-pool")
        for seed in EXTRA_SEEDS
    }
)


# Ensembles (beyond the paper): the mean of the song vectors of several recipes' models.
# Cross-validated from the members' out-of-fold scores; shipped as one averaged graph.
ENSEMBLES: dict[str, list[str]] = {
    "cnn-ensemble": ["cnn-bce-pos", "cnn-bce-pos-drop", "cnn-songpool"],
    "cnn-tf-pos-seeds": ["cnn-tf-pos", *(f"cnn-tf-pos-seed{seed}" for seed in EXTRA_SEEDS)],
    # the shipped model: five random starts of the best single recipe
    "cnn-tf-ensemble": ["cnn-tf-pool", *(f"cnn-tf-pool-seed{seed}" for seed in EXTRA_SEEDS)],
}


# Blends (beyond the paper): a patch model's song vector mixed with the song-statistics
# model's (the "mlp-rich" baseline: an MLP on features.song_statistics),
# (1 - w) * patch model + w * statistics model. Cross-validated from the out-of-fold
# scores of both; shipped as one graph with two inputs (network.HybridTagger).
@dataclass(frozen=True)
class Blend:
    patch_model: str  # a recipe, an ensemble, or the band student (band_student.METHOD)
    statistics_weight: float  # w, the song-statistics model's share of the song vector
    # on features.song_statistics: "mlp-rich" (an MLP on the labels) or "mlp-student"
    # (student.py: an MLP taught by the musicnn teachers, with heads on the labels)
    statistics_model: str = "mlp-rich"


BLENDS: dict[str, Blend] = {
    # w = 0.6: chosen by nested selection on the cross-validation folds (for each fold, the
    # w in 0, 0.05 .. 0.7 best by MAP on the other four folds' out-of-fold scores: 0.6 for
    # four folds, 0.7 for the fifth); see the model card.
    "cnn-tf-stats": Blend("cnn-tf-ensemble", 0.6),
    # the same CNN ensemble with the student taught by the musicnn teachers (student.py);
    # w = 0.6: the median of the nested selection's per-fold choices (0.6, 0.7, 0.9, 0.55,
    # 0.55; w in 0, 0.05 .. 1 by MAP on the other four folds); see the model card
    "cnn-tf-student": Blend("cnn-tf-ensemble", 0.6, "mlp-student"),
    # the student on each segment's 182 MFCC statistics and the 320 band statistics of its
    # 96-band log-mel (frontends.MfccFrontEnd.patches_and_bands); w = 0.85: the median of
    # the nested selection's per-fold choices (0.75, 0.85, 0.95, 0.85, 0.95; w in 0, 0.05
    # .. 1 by MAP on the other four folds); see the model card
    "cnn-tf-student-bands": Blend("cnn-tf-ensemble", 0.85, "mlp-student-bands"),
    # the band student (band_student.py: a 1-D CNN over 3 s of the 96-band log-mel, taught
    # by the musicnn teachers) in place of the CNN ensemble, with the same statistics
    # student; w = 0.25: the median of the nested selection's per-fold choices (0.3, 0.3,
    # 0.15, 0.25, 0.05; w in 0, 0.05 .. 1 by MAP on the other four folds); see the model card
    "cnn-band-student-bands": Blend("cnn-band-student", 0.25, "mlp-student-bands"),
    # the patient band student (issue 20: longer, mixup, the heads' logits as targets) with
    # the same statistics student; w = 0.25 until its own nested selection (model card)
    "cnn-patient-student-bands": Blend("cnn-patient-student", 0.25, "mlp-student-bands"),
    # the wide band student (issue 20) with the same statistics student; w = 0.25 until its
    # own nested selection (model card)
    "cnn-wide-student-bands": Blend("cnn-wide-student", 0.25, "mlp-student-bands"),
    # the consistent band student (issue 20: teachers and student on the same augmented
    # views, views.py) with the same statistics student; w = 0.25 until its own nested
    # selection (model card)
    "cnn-view-student-bands": Blend("cnn-view-student", 0.25, "mlp-student-bands"),
    # the wide student with the same views, and the same statistics student; w = 0.25
    "cnn-wide-view-student-bands": Blend("cnn-wide-view-student", 0.25, "mlp-student-bands"),
    # the same with views of the corpus files too; w = 0.25
    "cnn-wide-corpus-view-student-bands": Blend("cnn-wide-corpus-view-student", 0.25, "mlp-student-bands"),
    # the same student taught patiently (30 epochs, mixup, head logits); w = 0.25
    "cnn-wide-patient-student-bands": Blend("cnn-wide-patient-student", 0.25, "mlp-student-bands"),
}

# The song-statistics MLP's L2 penalty, chosen on the cross-validation folds (1 and 3
# tried; 3 has the higher MAP alone with these 182 inputs)
SONG_STATISTICS_ALPHA = 3.0

# MLPs on per-song statistics: name -> (statistics of a song's frames, L2 alpha), each
# alpha chosen on the cross-validation folds (the baselines get the benefit of the doubt)
STATISTICS_MODELS = {
    "mlp": (coefficient_mean_std, 1.0),
    "mlp-rich": (song_statistics, SONG_STATISTICS_ALPHA),
}
# The statistics part of the blends that predate the student (model.TagModel computes
# features.song_statistics at run time for either kind)
BLEND_STATISTICS_MODEL = "mlp-rich"


@dataclass
class StatisticsModel:
    """An MLP (256 ReLU units, sigmoid outputs) on per-song statistics: the evaluation's
    "mlp" (on coefficient_mean_std) and "mlp-rich" (on song_statistics, the half of a
    blend) baselines. Tags without positives (or without negatives) in training score
    their training frequency."""

    scaler: object  # sklearn StandardScaler over the statistics
    mlp: object  # sklearn MLPClassifier over the trainable tags
    trainable: np.ndarray  # indices of the tags the MLP predicts
    prior: np.ndarray  # (n_tags,) training frequency of every tag

    def predict(self, statistics: np.ndarray) -> np.ndarray:
        """Tag probabilities (n_songs, n_tags) for statistics (n_songs, n_statistics)."""
        scores = np.tile(self.prior, (len(statistics), 1))
        scores[:, self.trainable] = self.mlp.predict_proba(self.scaler.transform(statistics))
        return scores


def fit_statistics_model(
    statistics: np.ndarray, labels: np.ndarray, seed: int = 0, alpha: float = SONG_STATISTICS_ALPHA
) -> StatisticsModel:
    """Fit on statistics (n_songs, n_statistics) and labels (n_songs, n_tags)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(statistics)
    trainable = np.flatnonzero((labels.sum(0) > 0) & (labels.sum(0) < len(labels)))
    # No early_stopping: sklearn scores it by exact-match accuracy on multi-label data,
    # which stops training after a few iterations.
    mlp = MLPClassifier(hidden_layer_sizes=(256,), alpha=alpha, max_iter=200, random_state=seed)
    with warnings.catch_warnings():
        # 200 iterations is the cross-validated setting; sklearn warns that the loss still falls
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(scaler.transform(statistics), labels[:, trainable])
    return StatisticsModel(scaler, mlp, trainable, labels.mean(axis=0).astype(np.float64))


def recipe_feature_params(params: FeatureParams, recipe: TrainingRecipe) -> FeatureParams:
    """The feature parameters a recipe's model sees: `params` with the recipe's patch length.

    Only the cutting of frames into patches changes, so cached frames stay valid; the
    exported model stores these parameters, and `qbsd` cuts its patches by them."""
    return replace(params, long_frames_per_patch=recipe.long_frames_per_patch)


def ad_weights(labels: np.ndarray) -> np.ndarray:
    """Eq. (4)-(5): w_i = 1 - f_i / sum(f) + 1/N, f_i the tag's training frequency."""
    frequency = labels.sum(axis=0).astype(np.float64)
    return (1.0 - frequency / max(frequency.sum(), 1.0) + 1.0 / labels.shape[1]).astype(np.float32)


def positive_weights(labels: np.ndarray, cap: float = 50.0) -> np.ndarray:
    """BCE positive-class weight per tag: negatives / positives, capped (inverse frequency)."""
    positives = labels.sum(axis=0).astype(np.float64)
    negatives = labels.shape[0] - positives
    return np.clip(negatives / np.maximum(positives, 1.0), 1.0, cap).astype(np.float32)


def frame_statistics(song_frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and standard deviation over all frames, shapes (39,)."""
    count = sum(len(frames) for frames in song_frames)
    total = sum(frames.sum(axis=0, dtype=np.float64) for frames in song_frames)
    mean = total / count
    squares = sum(((frames - mean) ** 2).sum(axis=0, dtype=np.float64) for frames in song_frames)
    return mean.astype(np.float32), np.sqrt(squares / count).astype(np.float32)


class MultiLabelSmote:
    """SMOTE adapted to multi-label data (in the spirit of MLSMOTE, Charte et al. 2015).

    Rare tags are those with fewer positives than the mean tag. For each rare
    tag and each of its songs, a neighbour is drawn among the song's k nearest
    songs that also carry the tag (sklearn NearestNeighbors on per-song MFCC
    mean/std); a synthetic patch is x + delta (x' - x) with delta ~ U(0, 1),
    x and x' random patches of the two songs. Its labels follow MLSMOTE's
    ranking rule: a tag is on when at least half of the seed song and its
    neighbours carry it (the rare tag always is).
    """

    def __init__(self, summaries: np.ndarray, labels: np.ndarray, k: int = 5, seed: int = 0):
        from sklearn.neighbors import NearestNeighbors
        from sklearn.preprocessing import StandardScaler

        self.labels = labels
        self.rng = np.random.default_rng(seed)
        scaled = StandardScaler().fit_transform(summaries)
        positives = labels.sum(axis=0)
        self.plan = []  # (seed song, neighbour songs, synthetic labels)
        for tag in np.flatnonzero((positives > 1) & (positives < positives.mean())):
            songs = np.flatnonzero(labels[:, tag])
            neighbours = NearestNeighbors(n_neighbors=min(k + 1, len(songs))).fit(scaled[songs])
            _, index = neighbours.kneighbors(scaled[songs])
            for row, song in enumerate(songs):
                near = songs[index[row, 1:]]
                votes = labels[np.concatenate([[song], near])].mean(axis=0)
                synthetic = (votes >= 0.5).astype(np.float32)
                synthetic[tag] = 1.0
                self.plan.append((song, near, synthetic))

    def sample(self, song_frames: list[np.ndarray], params: FeatureParams, count: int):
        """`count` synthetic (patch (195, 10), label (n_tags,)) pairs."""
        if not self.plan:  # no tag is both rare and carried by two songs
            shape = (0, *params.patch_shape)
            return np.zeros(shape, np.float32), np.zeros((0, self.labels.shape[1]), np.float32)
        patches, labels = [], []
        for choice in self.rng.integers(0, len(self.plan), size=count):
            song, near, synthetic = self.plan[choice]
            other = near[self.rng.integers(0, len(near))]
            x = random_patch(song_frames[song], params, self.rng)
            x_other = random_patch(song_frames[other], params, self.rng)
            patches.append(x + self.rng.random() * (x_other - x))
            labels.append(synthetic)
        return np.stack(patches), np.stack(labels)


def random_patch(
    frames: np.ndarray, params: FeatureParams, rng: np.random.Generator, tempo_stretch: float = 0.0
) -> np.ndarray:
    """One patch (195, 10) starting at a random frame: a random excerpt of the song.

    `tempo_stretch` > 0 (augmentation, beyond the paper): the excerpt spans a random
    (1 +- tempo_stretch) times the usual 50 frames and is resampled to 50 by taking the
    nearest frame, a cheap change of tempo in the feature domain."""
    length = params.frames_per_patch
    rate = 1.0 + rng.uniform(-tempo_stretch, tempo_stretch) if tempo_stretch > 0 else 1.0
    span = max(int(round(length * rate)), 1)
    start = int(rng.integers(0, max(len(frames) - span, 0) + 1))
    window = frames[start : start + span]
    if len(window) < span:  # shorter than a patch: repeat the song to fill it
        window = np.resize(window, (span, frames.shape[1]))
    if span != length:
        window = window[np.minimum((np.arange(length) * rate).astype(int), span - 1)]
    return frames_to_patches(window, params)[0]


@dataclass
class TrainedModel:
    network: object  # PatchCNN
    recipe: TrainingRecipe
    epochs_run: int
    best_epoch: int
    seconds: float
    history: list


def _loss_function(recipe: TrainingRecipe, labels: np.ndarray):
    import torch
    import torch.nn.functional as F

    if recipe.loss == "mse":
        return lambda logits, target: ((torch.sigmoid(logits) - target) ** 2).sum(1).mean()
    if recipe.loss == "mse_ad":
        weights = torch.from_numpy(ad_weights(labels))
        return lambda logits, target: (weights * (torch.sigmoid(logits) - target) ** 2).sum(1).mean()
    if recipe.loss == "bce":
        return lambda logits, target: F.binary_cross_entropy_with_logits(logits, target)
    if recipe.loss == "bce_pos":
        pos_weight = torch.from_numpy(positive_weights(labels))
        return lambda logits, target: F.binary_cross_entropy_with_logits(logits, target, pos_weight=pos_weight)
    raise ValueError(f"unknown loss {recipe.loss!r}")


def _optimizer(recipe: TrainingRecipe, parameters):
    import torch

    if recipe.optimizer == "sgd_paper":
        # Keras' "decay 1e-6" is a per-step inverse-time decay of the learning rate.
        optimizer = torch.optim.SGD(parameters, lr=recipe.learning_rate, momentum=0.9, nesterov=True)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + 1e-6 * step))
        return optimizer, scheduler
    if recipe.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=recipe.learning_rate, weight_decay=recipe.weight_decay), None
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}")


def predict_songs(network, song_frames: list[np.ndarray], params: FeatureParams, batch_size: int = 512) -> np.ndarray:
    """Song vectors, shape (n_songs, n_tags): mean of the sigmoid outputs over each song's
    non-overlapping patches, exactly as `qbsd` computes them at run time."""
    import torch

    network.eval()
    vectors = []
    with torch.no_grad():
        for frames in song_frames:
            patches = frames_to_patches(frames, params)
            if len(patches) == 0:
                patches = frames_to_patches(np.resize(frames, (params.frames_per_patch, frames.shape[1])), params)
            outputs = [
                network(torch.from_numpy(patches[i : i + batch_size])).numpy()
                for i in range(0, len(patches), batch_size)
            ]
            vectors.append(np.concatenate(outputs).mean(axis=0))
    return np.stack(vectors)


def _validation_score(vectors: np.ndarray, labels: np.ndarray) -> float:
    from .metrics import retrieval_scores

    return retrieval_scores(labels, vectors, min_positives=1)["map"]


def train(
    song_frames: list[np.ndarray],
    labels: np.ndarray,
    groups: list[str],
    params: FeatureParams,
    recipe: TrainingRecipe,
    log=None,
) -> TrainedModel:
    """Train a PatchCNN on the given songs; early-stops on an artist-grouped inner split."""
    import torch

    from .network import PatchCNN

    params = recipe_feature_params(params, recipe)
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    labels = labels.astype(np.float32)
    train_index = np.arange(len(song_frames))
    validation_index = np.array([], dtype=int)
    if recipe.patience > 0 and recipe.validation_fraction > 0:
        from sklearn.model_selection import GroupShuffleSplit

        splitter = GroupShuffleSplit(1, test_size=recipe.validation_fraction, random_state=recipe.seed)
        train_index, validation_index = next(splitter.split(train_index, groups=groups))

    train_frames = [song_frames[i] for i in train_index]
    train_labels = labels[train_index]
    network = PatchCNN(
        labels.shape[1],
        params.patch_shape,
        frame_dim=params.frame_dim,
        dropout=recipe.dropout,
        layout=recipe.layout,
        time_pooling=recipe.time_pooling,
        filters=recipe.filters,
    )
    network.set_normalisation(*frame_statistics(train_frames))
    loss_function = _loss_function(recipe, train_labels)
    optimizer, scheduler = _optimizer(recipe, network.parameters())
    if recipe.smote and recipe.song_pooling:
        raise ValueError("SMOTE makes single synthetic patches; it cannot be combined with song pooling")
    if recipe.mixup and recipe.song_pooling:
        raise ValueError("mixup mixes single patches; it cannot be combined with song pooling")
    smote = None
    if recipe.smote:
        summaries = np.stack([coefficient_mean_std(frames) for frames in train_frames])
        smote = MultiLabelSmote(summaries, train_labels, seed=recipe.seed)

    best_score, best_state, best_epoch, history = -1.0, None, 0, []
    started = time.time()
    epochs_run = 0
    for epoch in range(1, recipe.epochs + 1):
        epochs_run = epoch
        network.train()
        if recipe.song_pooling:
            # consecutive runs of `song_pooling` patches come from one song
            song_order = np.repeat(rng.permutation(len(train_frames)), recipe.song_pooling)
        else:
            song_order = np.repeat(np.arange(len(train_frames)), recipe.patches_per_song)
            rng.shuffle(song_order)
        patches = np.stack([random_patch(train_frames[s], params, rng, recipe.tempo_stretch) for s in song_order])
        targets = train_labels[song_order]
        if smote is not None:
            extra, extra_labels = smote.sample(train_frames, params, len(song_order) // 4)
            patches = np.concatenate([patches, extra])
            targets = np.concatenate([targets, extra_labels])
            if recipe.song_pooling == 0:
                order = rng.permutation(len(patches))
                patches, targets = patches[order], targets[order]
        if recipe.gain_db > 0:
            # g dB of gain adds g to every log-mel band, so g * sqrt(n_mels) to the
            # orthonormal c0 and nothing to the other coefficients or the deltas.
            gains = rng.uniform(-recipe.gain_db, recipe.gain_db, size=len(patches)).astype(np.float32)
            patches[:, 0 : params.frame_dim * params.frames_per_long_frame : params.frame_dim, :] += gains[
                :, None, None
            ] * math.sqrt(params.n_mels)
        if recipe.mixup > 0:
            # mixing raw MFCC is mixing normalised inputs too: the normalisation is affine
            weights = rng.beta(recipe.mixup, recipe.mixup, size=len(patches)).astype(np.float32)
            partners = rng.permutation(len(patches))
            patches = weights[:, None, None] * patches + (1 - weights[:, None, None]) * patches[partners]
            targets = weights[:, None] * targets + (1 - weights[:, None]) * targets[partners]
        total_loss = 0.0
        step = recipe.batch_size * max(recipe.song_pooling, 1)
        for start in range(0, len(patches), step):
            batch = torch.from_numpy(patches[start : start + step])
            target = torch.from_numpy(targets[start : start + step])
            logits = network.logits(batch)
            if recipe.song_pooling:
                k = recipe.song_pooling
                usable = (len(batch) // k) * k
                if usable == 0:
                    continue
                probabilities = torch.sigmoid(logits[:usable]).reshape(-1, k, logits.shape[1]).mean(1)
                target = target[:usable:k]
                logits = torch.logit(probabilities.clamp(1e-6, 1 - 1e-6))
            loss = loss_function(logits, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total_loss += loss.item() * len(batch)
        record = {"epoch": epoch, "loss": total_loss / len(patches), "seconds": time.time() - started}
        if len(validation_index):
            score = _validation_score(
                predict_songs(network, [song_frames[i] for i in validation_index], params), labels[validation_index]
            )
            record["validation_map"] = score
            if score > best_score:
                best_score, best_epoch = score, epoch
                best_state = {k: v.clone() for k, v in network.state_dict().items()}
            elif epoch - best_epoch >= recipe.patience:
                history.append(record)
                if log:
                    log(record)
                break
        history.append(record)
        if log:
            log(record)
    if best_state is not None:
        network.load_state_dict(best_state)
    else:
        best_epoch = epochs_run
    network.eval()
    return TrainedModel(network, recipe, epochs_run, best_epoch, time.time() - started, history)


def with_overrides(recipe: TrainingRecipe, **overrides) -> TrainingRecipe:
    """A copy of `recipe` with some fields changed (e.g. epochs for a CI smoke run)."""
    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
