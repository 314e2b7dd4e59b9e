// Package measurements computes reference values for confidential guest
// launches. It computes the AMD SEV-SNP launch digest, which the attestation
// report carries in its 48-byte MEASUREMENT field, for a guest that QEMU/KVM
// starts from an OVMF image, with or without a measured direct boot.
//
// Fill an [SNPLaunch] with the firmware, kernel, initrd, command line and
// vCPU shape of the launch and call [SNPLaunch.Digest], or call
// [SNPLaunchDigestFiles] with file paths. The result equals the report's
// MEASUREMENT only if every input matches the launch exactly: the same
// firmware file, the kernel file as given to -kernel, the -append string,
// the vCPU count and CPU model ([QEMUModelSignature]) and the SEV_FEATURES
// the host enables.
//
// # What the digest covers
//
// The SNP firmware chains one SHA-384 PAGE_INFO record per launch page
// (AMD SEV-SNP Firmware ABI, pub. 56860). For QEMU/KVM these are, in order:
// every 4 KiB page of the firmware image as a NORMAL page; the ranges named
// by the firmware's SEV metadata ("ASEV") in table order, where the
// kernel-hash page holds the SHA-256 digests of the kernel, initrd and
// command line; and one VMSA page per vCPU. Guest policy, HOST_DATA and the
// ID block are not part of the digest.
//
// # Limits
//
// Only the QEMU/KVM VMSA model is implemented: the vCPU registers that KVM
// writes at reset, with the FPU state that KVM's SNP host code sets up
// (MXCSR 0x1F80, FCW 0x37F). Launches on AWS EC2, Google Compute Engine or
// under an SVSM use other VMSA contents and measure other digests. The
// firmware must be an OVMF build with a GUIDed footer table and SEV
// metadata, such as edk2's AmdSevX64 build; measured direct boot needs its
// SNP_KERNEL_HASHES item.
package measurements
