# Two entry points that set everything up on a fresh machine with Python 3.11:
#   make demo   - upscale the bundled sample chest X-rays with the bundled model and print the scores
#   make test   - ruff + the whole test suite + the documentation site built strictly (make docs)
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup browser dicomtools orthanc viewer docs clean

# PyTorch first, pinned to the release this machine keeps on local disk (pip takes it from there; elsewhere
# it comes from PyPI); then medsr itself, editable, with every optional extra (web app, ONNX, TensorBoard) and
# the test tools. A user who needs only the core runs `pip install .` instead.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install -q -e ".[all,test]"
	touch $(STAMP)

setup: $(STAMP)

# Headless Chromium for the web app's end-to-end test (Debian packages; skipped where apt is not available).
browser:
	@command -v chromium >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	  echo "chromium could not be installed: the browser test will skip"; }

# dciodvfy (Debian dicom3tools) checks every derived DICOM the tests write (skipped where apt is not available).
dicomtools:
	@command -v dciodvfy >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq dicom3tools >/dev/null) || \
	  echo "dicom3tools could not be installed: the DICOM validity test will skip"; }

# Orthanc with its DICOMweb plugin: the real PACS the DICOM node's tests send to and receive from (Debian
# packages; skipped where apt is not available). The tests start their own Orthanc on loopback ports.
orthanc:
	@test -x /usr/sbin/Orthanc -a -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so || { command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq orthanc orthanc-dicomweb >/dev/null) || \
	  echo "orthanc could not be installed: the DICOM node's PACS tests will skip"; }

# The web app's image viewer: Cornerstone3D from npm, pinned by web/viewer/package-lock.json, bundled offline by
# esbuild into the one static script the package ships (nothing is fetched from a CDN at run time). Where npm
# cannot be had, one line says so: the app then shows why it has no viewer, and the viewer's browser tests skip.
VIEWER_JS := src/medsr/app/static/viewer.js
viewer: $(VIEWER_JS)

$(VIEWER_JS): web/viewer/package.json web/viewer/package-lock.json web/viewer/src/main.js
	@command -v npm >/dev/null || { command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null); } || true
	@if command -v npm >/dev/null; then \
	  cd web/viewer && npm ci --no-audit --no-fund --loglevel=error && npm run -s build; \
	else echo "npm could not be installed: the web app's viewer is not built (its browser tests skip)"; fi

# The main job: super-resolve the bundled sample chest X-rays (4x) with the default bundled model, then score
# the model beside bicubic and Lanczos on the same images (each downscaled 4x first, so the original is the truth).
demo: $(STAMP)
	$(BIN)/medsr upscale src/medsr/samples -o out/demo
	$(BIN)/medsr evaluate --model xray-x4 src/medsr/samples --out out/demo/scores.csv

test: $(STAMP) browser dicomtools orthanc viewer docs
	$(BIN)/ruff check src tests bench
	$(BIN)/python -m pytest -q

# The documentation site, built with warnings as errors: a broken link, a missing page or a stale API reference
# fails. The pages generated from the code (CLI reference, models index) come from docs/hooks.py.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site web/viewer/node_modules $(VIEWER_JS)
