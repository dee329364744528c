#!/usr/bin/env bash
# Prepare, on a machine with PyPI, what bench/gpu.sh needs on a GPU machine that has no network: the wheels of
# the packages its Python 3.12 image may lack into .whl/, and the Fashion-MNIST IDX files into .gpu-data/. Both are
# in .gitignore; carry them (with the working tree they must stay under the 64-MiB carry limit: ~59 MB now).
# The image is documented to have JAX with CUDA, NumPy, pandas, scikit-learn, typer, rich, h5py and ml-dtypes; every
# other import of hpsearch's JAX path and of KerasTuner is fetched here, found by a dry run in a Python 3.12 with
# only those (README: Benchmarks). A wheel the image already has is harmless (installed with --target, it wins).
# Pillow is left out (7 MB): only image folders import it.
# Run from the project root: bash bench/gpu_wheels.sh [IDX folder, default Debian's dataset-fashion-mnist]
set -euo pipefail
source=${1:-/usr/share/datasets/fashion-mnist}
rm -rf .whl && mkdir -p .whl .gpu-data
# The versions this project is tested with; --no-deps: each dependency the image lacks is named here.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  keras==3.15.1 namex optree optuna==5.1.0 alembic sqlalchemy colorlog mako plotly==7.1.0 narwhals \
  absl-py packaging tqdm PyYAML \
  keras-tuner==1.4.8 kt-legacy six grpcio protobuf
cp "$source"/*-idx?-ubyte.gz .gpu-data/
ls -1 .whl .gpu-data
du -sh .whl .gpu-data
