"""The ``kvm`` flavor (issue #25): each pod a virtual machine. The pod's host unit runs QEMU
(stage1/kvm/qemu.py, a pure function of a frozen plan) with one virtiofsd sharing the pod's stage1
tree as the guest's root; the guest kernel boots a busybox initramfs made at install time
(stage1/kvm/assets.py), which switches into the host's systemd on that tree, where the apps run
as the same units, with the same profile, as in an nspawn pod (stage1/units.py).
"""
