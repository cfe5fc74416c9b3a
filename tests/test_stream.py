"""The training stream: seeded, endless, and showing each case as the fixed set's file would be read."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from bundle.data.dicom_writer import write_dx
from bundle.data.stream import STREAM_KEY, PhantomStream
from bundle.transforms import read_xray_dicom


def test_same_seed_same_cases_new_seed_new_cases():
    a = [c["image"] for c in itertools.islice(PhantomStream("cxr", 128, seed=3), 2)]
    b = [c["image"] for c in itertools.islice(PhantomStream("cxr", 128, seed=3), 2)]
    c = next(iter(PhantomStream("cxr", 128, seed=4)))["image"]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], c)


def test_cxr_case_reads_as_its_file_would(tmp_path):
    """The display image equals what read_xray_dicom makes of the DX the fixed set would store."""
    from bundle.data import cxr

    stream = PhantomStream("cxr", 128, seed=0)
    item = stream.case(5)
    pixels, label, info = cxr.generate_cxr(np.random.default_rng([0, 2, STREAM_KEY, 5]), 128)
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        path = write_dx(tmp_path / f"{photometric}.dcm", pixels, photometric=photometric, patient_id="P",
                        patient_name="P", window=info["window"])
        image, _ = read_xray_dicom(path)
        # the file keeps the window as a decimal string: equal to far less than one stored unit (1 / 4095)
        np.testing.assert_allclose(item["image"][0].numpy(), image, atol=1e-5)
    np.testing.assert_array_equal(item["label"][0].numpy(), label)
    assert item["image"].shape == (1, 128, 128) and item["image"].dtype == torch.float32


@pytest.mark.parametrize("task, size, channels", [("fundus", 96, 3), ("dermoscopy", (96, 128), 3)])
def test_photo_case_is_rgb_in_unit_range(task, size, channels):
    item = PhantomStream(task, size, seed=0).case(0)
    assert item["image"].shape[0] == channels and item["image"].shape[1:] == item["label"].shape[1:]
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0


def test_workers_share_the_stream_without_repeats():
    """Two DataLoader workers take alternate cases: together they give the stream's first cases once each."""
    stream = PhantomStream("cxr", 128, seed=1)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=2)
    got = [item["image"] for item in itertools.islice(loader, 4)]
    want = [stream.case(k)["image"] for k in range(4)]
    assert all(torch.equal(g, w) for g, w in zip(got, want))


def test_render_options_widen_the_renderer_not_the_labels():
    """The stream passes its render options to the renderer: denser anterior ribs change the image, not the case."""
    from bundle.data import cxr

    dense = PhantomStream("cxr", 128, seed=0, render_options={"anterior_ribs": [1.5, 1.5]}).case(5)
    plain = PhantomStream("cxr", 128, seed=0).case(5)
    pixels, label, _ = cxr.generate_cxr(np.random.default_rng([0, 2, STREAM_KEY, 5]), 128, anterior_ribs=(1.5, 1.5))
    np.testing.assert_array_equal(dense["label"][0].numpy(), plain["label"][0].numpy())
    np.testing.assert_array_equal(dense["label"][0].numpy(), label)
    assert not torch.equal(dense["image"], plain["image"])


def test_an_unknown_render_option_is_named_before_training():
    with pytest.raises(ValueError, match="no option anterior_rib; its options are: anterior_ribs"):
        PhantomStream("cxr", 128, render_options={"anterior_rib": [0.2, 1.5]})
    with pytest.raises(ValueError, match="generate_fundus has no option anterior_ribs; its options are: none"):
        PhantomStream("fundus", 96, render_options={"anterior_ribs": [0.2, 1.5]})


def test_a_bad_render_option_value_is_named_before_training():
    """A value the renderer refuses fails when the stream is built (the config's instantiation), not in a worker."""
    with pytest.raises(ValueError, match=r"stream_render_options \{'zoom': \[1.3, 0.5\]\}: Argument zoom should be"):
        PhantomStream("cxr", 128, render_options={"zoom": [1.3, 0.5]})
    with pytest.raises(ValueError, match="stream_render_size 512 .* should be a pair of integers"):
        PhantomStream("dermoscopy", 512)
