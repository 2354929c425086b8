"""What ends a boot early, read off the console without a VM."""

from __future__ import annotations

from avfrepo.boot import checks, gpt

ROOT = "7517bd56-2194-4a1d-9d62-d1c314429359"
CON = (f"[    0.000000] Kernel command line: initrd=\\initramfs-linux-avf.img root=PARTUUID={ROOT} rw rootwait\n"
       "[    9.1] virtio_blk virtio1: [vda] 1976320 512-byte logical blocks\n"
       "[    9.2]  vda: vda1 vda2\n"
       "Begin: Running /scripts/local-premount ... done.\n"
       "Begin: Waiting for root file system ... ")


def session(*guids: str) -> checks.Session:
    s = object.__new__(checks.Session)
    s.placed = [gpt.Placed(f"p{i}", g, True, 2048, 4096, i + 1) for i, g in enumerate(guids)]
    return s


def test_waiting_for_a_partuuid_no_partition_has_is_certain():
    why = session("0b7a0c57-0000-4000-8000-000000000001", "0b7a0c57-0000-4000-8000-000000000002")._root_absent(CON)
    assert why and why.startswith("initramfs: ") and ROOT in why and "vda1 vda2" in why


def test_waiting_for_a_partition_the_disk_has_is_not_a_failure_yet():
    assert session("0b7a0c57-0000-4000-8000-000000000001", ROOT)._root_absent(CON) is None
    # the disk not scanned yet, or the initramfs not waiting: nothing is certain
    assert session("0b7a0c57-0000-4000-8000-000000000001")._root_absent(CON.replace(" vda: vda1 vda2", "")) is None
    assert session("0b7a0c57-0000-4000-8000-000000000001")._root_absent(CON.rsplit("Begin: Waiting", 1)[0]) is None
