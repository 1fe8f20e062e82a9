"""The kvm flavor: each pod a virtual machine booting systemd, its apps as units inside (issue #25)."""
