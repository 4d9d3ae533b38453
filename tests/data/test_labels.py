"""Label files: one name per line, the whitespace around each name dropped (a trailing space or a Windows line
end would otherwise become part of the class name in predictions, Triton's and DeepStream's label files)."""
import pytest

from vanexport.data.labels import read_labels
from vanexport.errors import VanexportError


def test_whitespace_around_each_name_is_dropped(tmp_path):
    f = tmp_path / "labels.txt"
    f.write_bytes(b"  cat \r\n\tdog\t\r\nsea lion  \r\n")
    assert read_labels(f, 3) == ["cat", "dog", "sea lion"]  # inner spaces stay


def test_a_name_of_only_whitespace_is_an_empty_line(tmp_path):
    f = tmp_path / "labels.txt"
    f.write_text("cat\n   \ndog\n")
    with pytest.raises(VanexportError, match="has empty lines"):
        read_labels(f)


def test_the_stripped_names_are_what_the_bundle_and_deepstream_carry(tmp_path, b0_onnx_64):
    from vanexport.device.bundle import open_bundle
    from vanexport.ship.bundle import make_bundle
    from vanexport.ship.deepstream import deepstream_config

    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f" thing {i}\t\r\n" for i in range(1000)))
    make_bundle(model=b0_onnx_64, labels=labels, output=tmp_path / "b.tar.gz", validate=False)
    assert open_bundle(tmp_path / "b.tar.gz").labels[:2] == ["thing 0", "thing 1"]
    r = deepstream_config(tmp_path / "b.tar.gz", tmp_path / "ds.txt")
    assert (tmp_path / "ds_labels.txt").read_text().split(";")[:2] == ["thing 0", "thing 1"] and r.labels
