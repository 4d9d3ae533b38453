"""Images of every mode Pillow opens become the right 8-bit RGB, and images too large to resize are refused one by
one, before a pixel is decoded, while the other images of the call are classified.

Each image is made here with Pillow from numpy pixels; each expected result is a numpy formula on those pixels
(16-bit scaling, alpha compositing onto white, CMYK's subtractive mix, a rotation), not vanexport's code."""
import json
import resource

import numpy as np
import pytest
from PIL import Image

from vanexport.data.images import MAX_SIDE, open_image
from vanexport.data.preprocess import MAX_PIXELS, preprocess_image, to_rgb
from vanexport.errors import VanexportError
from vanexport.model.variants import Preprocessing

from .conftest import assert_refused, run_subprocess

RNG = np.random.default_rng(23)
WHITE = 255.0


def grey_as_rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=-1).astype(np.uint8)


def over_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha compositing ("over") onto an opaque white background, in floating point."""
    a = alpha[..., None].astype(np.float64) / 255
    return rgb.astype(np.float64) * a + WHITE * (1 - a)


def pixels(path) -> np.ndarray:
    image = open_image(path)
    assert image.mode == "RGB"
    return np.asarray(image)


# ---- grey deeper than 8 bits ------------------------------------------------------------------------------

def test_a_16_bit_grey_png_is_scaled_not_clipped(tmp_path):
    grey = RNG.integers(0, 65536, (40, 50), dtype=np.uint16)  # a photo's values spread over the 16-bit range
    Image.fromarray(grey).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode in ("I;16", "I")  # what Pillow opens it as
    expected = np.round(grey / 65535 * 255)
    assert np.array_equal(pixels(tmp_path / "g16.png"), grey_as_rgb(expected))
    assert (pixels(tmp_path / "g16.png") == 255).mean() < 0.01  # was 99.6 %: clipped at 255


@pytest.mark.parametrize("mode, dtype", [("I;16B", ">u2"), ("I;16L", "<u2"), ("I", "<i4")])
def test_every_16_bit_layout_is_scaled_alike(mode, dtype):
    grey = RNG.integers(0, 65536, (16, 24)).astype(dtype)
    image = Image.frombytes(mode, (24, 16), grey.tobytes())
    assert np.array_equal(np.asarray(to_rgb(image)), grey_as_rgb(np.round(grey.astype(np.float64) / 65535 * 255)))


def test_32_bit_integers_beyond_16_bits_are_clipped():
    grey = np.array([[-70000, -1, 0, 257, 65535, 65536, 2**31 - 1]], np.int32)
    image = Image.frombytes("I", (7, 1), grey.astype("<i4").tobytes())
    expected = np.round(np.clip(grey, 0, 65535) / 65535 * 255)
    assert np.array_equal(np.asarray(to_rgb(image)), grey_as_rgb(expected))


def test_float_grey_in_0_1_is_scaled_and_beyond_it_is_read_as_0_255():
    unit = RNG.random((10, 12)).astype(np.float32)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(unit, "F"))), grey_as_rgb(np.round(unit * 255.0)))
    wide = RNG.uniform(-50, 300, (10, 12)).astype(np.float32)
    expected = np.round(np.clip(wide.astype(np.float64), 0, 255))
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(wide, "F"))), grey_as_rgb(expected))
    holes = np.array([[np.nan, 0.25, 1.0]], np.float32)  # NaN is 0, and does not make the image "beyond [0, 1]"
    expected = np.round(np.where(np.isnan(holes), 0, holes).astype(np.float64) * 255)
    assert np.array_equal(np.asarray(to_rgb(Image.fromarray(holes, "F"))), grey_as_rgb(expected))


# ---- transparency: onto white -----------------------------------------------------------------------------

def test_rgba_is_composited_onto_white(tmp_path):
    rgb = RNG.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (30, 40), dtype=np.uint8)
    alpha[:5] = 0  # fully transparent rows: their stored colour must not show
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "rgba.png")
    got = pixels(tmp_path / "rgba.png").astype(np.float64)
    assert np.abs(got - over_white(rgb, alpha)).max() <= 1  # Pillow composites in 8-bit integers
    assert (got[:5] == 255).all()


def test_grey_with_alpha_is_composited_onto_white(tmp_path):
    grey = RNG.integers(0, 256, (20, 20), dtype=np.uint8)
    alpha = RNG.integers(0, 256, (20, 20), dtype=np.uint8)
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(tmp_path / "la.png")
    expected = over_white(grey_as_rgb(grey), alpha)
    assert np.abs(pixels(tmp_path / "la.png").astype(np.float64) - expected).max() <= 1


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_a_palette_with_a_transparent_entry_shows_white_there(tmp_path, suffix):
    palette = RNG.integers(0, 256, (16, 3), dtype=np.uint8)
    palette[3] = (0, 0, 0)  # the transparent entry's colour: black, as encoders often leave it
    index = RNG.integers(0, 16, (24, 32), dtype=np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette(palette.tobytes())
    image.save(tmp_path / f"p{suffix}", transparency=3)
    expected = np.where((index == 3)[..., None], 255, palette[index])
    assert np.array_equal(pixels(tmp_path / f"p{suffix}"), expected)


# ---- other modes ------------------------------------------------------------------------------------------

def test_one_bit_images_are_black_and_white(tmp_path):
    bits = RNG.random((17, 23)) < 0.5
    Image.fromarray(bits).save(tmp_path / "bits.png")
    assert Image.open(tmp_path / "bits.png").mode == "1"
    assert np.array_equal(pixels(tmp_path / "bits.png"), grey_as_rgb(np.where(bits, 255, 0)))


def test_a_cmyk_jpeg_is_mixed_subtractively(tmp_path):
    cmyk = RNG.integers(0, 256, (32, 32, 4), dtype=np.uint8)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    decoded = np.asarray(Image.open(tmp_path / "cmyk.jpg")).astype(np.float64)  # JPEG is lossy: its own pixels
    assert decoded.shape[-1] == 4
    c_m_y, k = decoded[..., :3], decoded[..., 3:]
    expected = (255 - c_m_y) * (255 - k) / 255  # each ink takes its share of what the black ink leaves
    assert np.abs(pixels(tmp_path / "cmyk.jpg") - expected).max() <= 0.5 + 1e-9


@pytest.mark.parametrize("suffix, options", [(".gif", {}), (".png", {}), (".webp", {"lossless": True})])
def test_an_animation_gives_its_first_frame(tmp_path, suffix, options):
    colours = [(200, 30, 40), (10, 220, 60), (30, 40, 250)]
    frames = [Image.new("RGB", (16, 12), c) for c in colours]
    frames[0].save(tmp_path / f"anim{suffix}", save_all=True, append_images=frames[1:], duration=50, **options)
    assert getattr(Image.open(tmp_path / f"anim{suffix}"), "n_frames", 1) == 3
    assert (pixels(tmp_path / f"anim{suffix}") == colours[0]).all()


def test_the_exif_orientation_is_applied(tmp_path):
    grey = RNG.integers(0, 256, (30, 50), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF Orientation 6: the camera was turned, show the stored pixels turned 90 degrees clockwise
    Image.fromarray(grey).save(tmp_path / "turned.png", exif=exif)
    assert np.array_equal(pixels(tmp_path / "turned.png"), grey_as_rgb(np.rot90(grey, k=-1)))


# ---- sizes ------------------------------------------------------------------------------------------------

PRE = Preprocessing(input_size=64)  # resized to a 71-pixel short side, as the 64-pixel model of predict below


def test_a_long_thin_png_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    Image.new("1", (400_000, 1)).save(tmp_path / "thin.png")
    assert (tmp_path / "thin.png").stat().st_size < 1000
    assert 400_000 * 1 <= MAX_PIXELS and 400_000 > MAX_SIDE  # refused by its side, not its pixel count

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    refusal = r"is too large \(400000 x 1 pixels; at most 89478485 pixels, 65500 a side\)"
    with pytest.raises(VanexportError, match=refusal):
        open_image(tmp_path / "thin.png")


@pytest.mark.parametrize("size", [(9000, 10000), (30000, 30000)])  # past Pillow's limit, past twice its limit
def test_too_many_pixels_is_refused_alike_before_decoding(tmp_path, monkeypatch, size):
    Image.new("1", size).save(tmp_path / "big.png")
    monkeypatch.setattr(Image.Image, "load", lambda self: (_ for _ in ()).throw(AssertionError("decoded")))
    refusal = r"is too large \((\d+ x \d+ pixels; )?at most 89478485 pixels, 65500 a side\): resize or crop it"
    with pytest.raises(VanexportError, match=refusal):
        open_image(tmp_path / "big.png")


def test_an_image_whose_resize_would_be_too_large_is_refused_before_the_resize(monkeypatch):
    wide = Image.new("L", (20_000, 1))  # within both limits, but 71 rows of 1 420 000 pixels once resized
    assert PRE.resize_size == 71 and 71 * 71 * 20_000 > MAX_PIXELS
    monkeypatch.setattr(Image.Image, "resize", lambda *a, **k: (_ for _ in ()).throw(AssertionError("resized")))
    with pytest.raises(VanexportError, match=r"a 20000 x 1 image resized to 1420000 x 71 would have more than"):
        preprocess_image(wide, PRE)


def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))  # a broken check fails here, not the machine


@pytest.mark.slow
def test_predict_skips_the_giant_image_and_classifies_the_others(b0_onnx_64, case):
    folder = case / "imgs"
    folder.mkdir()
    Image.new("1", (400_000, 1)).save(folder / "b_giant.png")
    Image.new("L", (20_000, 1)).save(folder / "c_thin.png")
    Image.fromarray(RNG.integers(0, 256, (90, 80, 3), dtype=np.uint8)).save(folder / "a_photo.png")
    Image.fromarray(RNG.integers(0, 65536, (70, 70), dtype=np.uint16)).save(folder / "d_grey16.png")
    one_way = ["--json", "--backend", "onnxruntime-cpu"]  # one backend for both runs: their answers compare exactly
    o = run_subprocess(["predict", "imgs", "--model", b0_onnx_64, *one_way], case, preexec=_limit_memory)
    assert o.code == 0, o.stderr  # some images were classified: the rest are warnings (docs/commands/predict.md)
    record = json.loads(o.stdout)
    assert [p["image"] for p in record["predictions"]] == ["imgs/a_photo.png", "imgs/d_grey16.png"]
    assert record["skipped_images"] == ["imgs/b_giant.png", "imgs/c_thin.png"]
    assert "warning: image 'imgs/b_giant.png' is too large (400000 x 1 pixels; at most 89478485 pixels" in o.stderr
    assert "warning: image 'imgs/c_thin.png': a 20000 x 1 image resized to 1420000 x 71" in o.stderr
    assert "Traceback" not in o.stderr
    # the same answers as for the good images alone: the giant ones changed nothing
    alone = run_subprocess(["predict", "imgs/a_photo.png", "imgs/d_grey16.png", "--model", b0_onnx_64, *one_way],
                           case, preexec=_limit_memory)
    assert json.loads(alone.stdout)["predictions"] == record["predictions"]
    o = run_subprocess(["predict", "imgs/b_giant.png", "--model", b0_onnx_64], case, preexec=_limit_memory)
    assert_refused(o, "none of the images could be read (image 'imgs/b_giant.png' is too large (400000 x 1")
