package measurements

import (
	"crypto/sha512"
	"errors"
	"fmt"
	"os"
)

const (
	// DefaultGuestFeatures is the SEV_FEATURES value used when
	// [SNPLaunch.GuestFeatures] is zero. It sets only SNPActive (bit 0), as
	// KVM_SEV_INIT2 does without extra VMSA features (QEMU 9.1 and later on
	// Linux 6.10 and later).
	DefaultGuestFeatures uint64 = 0x1

	// DefaultVMSAGPA is the GPA at which Linux KVM measures every VMSA
	// (INITIAL_VMSA_GPA, upstream since Linux 6.11), used when
	// [SNPLaunch.VMSAGPA] is zero.
	DefaultVMSAGPA uint64 = 0xFFFFFFFFF000

	// featureSNPActive is SEV_FEATURES bit 0, set in every SNP VMSA.
	featureSNPActive = 0x1

	// maxVCPUs is the largest KVM_MAX_VCPUS an x86 host kernel can be
	// built with (KVM_MAX_NR_VCPUS in arch/x86/kvm/Kconfig, range 1024-4096).
	maxVCPUs = 4096

	// firmwareEnd is the GPA where the firmware image ends: it is mapped
	// right below 4 GiB.
	firmwareEnd = 1 << 32
)

// SNPLaunch describes an SEV-SNP guest that QEMU/KVM starts from an OVMF
// image, optionally with a measured direct boot (QEMU's sev-snp-guest
// object with kernel-hashes=on).
type SNPLaunch struct {
	// Firmware is the OVMF image, such as Debian's OVMF.amdsev.fd. It is
	// mapped to end at 4 GiB and its size must be a multiple of 4 KiB.
	Firmware []byte

	// Kernel is the kernel file exactly as passed to -kernel. Nil means no
	// direct boot, so the kernel-hash page is measured as a ZERO page. An
	// empty non-nil slice is an empty kernel file, such as /dev/null, and is
	// hashed as empty input.
	Kernel []byte

	// Initrd is the initrd file. Nil or empty hashes as empty input, like
	// QEMU without -initrd. A non-nil Initrd requires a Kernel.
	Initrd []byte

	// Cmdline is the -append string, hashed with one terminating NUL byte.
	// It requires a Kernel unless it is empty.
	Cmdline string

	// VCPUs is the number of vCPUs, from 1 to 4096. Each adds one VMSA.
	VCPUs int

	// VCPUSignature is the guest vCPU's CPUID Fn0000_0001_EAX, such as
	// [SignatureEPYC] for -cpu EPYC-v4; see [QEMUModelSignature]. It must
	// not be zero.
	VCPUSignature uint32

	// GuestFeatures is the VMSA SEV_FEATURES value, the vmsa_features the
	// host passes to KVM_SEV_INIT2. Zero means [DefaultGuestFeatures], and
	// any other value must have bit 0 (SNPActive) set.
	GuestFeatures uint64

	// VMSAGPA is the GPA at which the VMSAs are measured. Zero means
	// [DefaultVMSAGPA], which holds on Linux KVM for Milan and Genoa.
	VMSAGPA uint64
}

// vcpuConfig is the part of a launch that shapes its VMSAs, with defaults
// applied.
type vcpuConfig struct {
	count     int
	signature uint32
	features  uint64
	vmsaGPA   uint64
}

// newVCPUConfig applies the defaults and checks the values.
func newVCPUConfig(count int, signature uint32, features, vmsaGPA uint64) (vcpuConfig, error) {
	if features == 0 {
		features = DefaultGuestFeatures
	}
	if vmsaGPA == 0 {
		vmsaGPA = DefaultVMSAGPA
	}
	c := vcpuConfig{count: count, signature: signature, features: features, vmsaGPA: vmsaGPA}

	if count < 1 || count > maxVCPUs {
		return c, fmt.Errorf("invalid vCPU count %d: must be from 1 to %d", count, maxVCPUs)
	}
	if signature == 0 {
		return c, errors.New("vCPU signature is zero: set it to the guest's CPUID Fn0000_0001_EAX, " +
			"for example SignatureEPYC for QEMU's EPYC-v4 model")
	}
	if features&featureSNPActive == 0 {
		return c, fmt.Errorf("guest features %#x lack bit 0 (SNPActive), which every SNP VMSA has",
			features)
	}
	if vmsaGPA%pageSize != 0 {
		return c, fmt.Errorf("VMSA GPA %#x is not 4 KiB aligned", vmsaGPA)
	}
	return c, nil
}

// Digest computes the launch digest that the attestation report of this
// guest carries as MEASUREMENT. It fails if the firmware lacks the footer
// table or SEV metadata, if a Kernel is given but the firmware cannot verify
// kernel hashes, or if a field is invalid.
func (l *SNPLaunch) Digest() ([DigestSize]byte, error) {
	cfg, err := newVCPUConfig(l.VCPUs, l.VCPUSignature, l.GuestFeatures, l.VMSAGPA)
	if err != nil {
		return [DigestSize]byte{}, err
	}

	var boot *bootHashes
	if l.Kernel != nil {
		boot, err = newBootHashes(l.Kernel, l.Initrd, l.Cmdline)
		if err != nil {
			return [DigestSize]byte{}, err
		}
	} else if err := checkNoBootArtifacts(l.Initrd != nil, l.Cmdline); err != nil {
		return [DigestSize]byte{}, err
	}

	return snpDigest(l.Firmware, boot, cfg)
}

// checkNoBootArtifacts rejects an initrd or command line without a kernel:
// QEMU refuses to start such a guest, and without a kernel the launch
// measures neither.
func checkNoBootArtifacts(hasInitrd bool, cmdline string) error {
	if hasInitrd {
		return errors.New("initrd given without a kernel")
	}
	if cmdline != "" {
		return errors.New("kernel command line given without a kernel")
	}
	return nil
}

// SNPLaunchDigestFiles computes the launch digest of a QEMU/KVM SEV-SNP
// guest from files, as [SNPLaunch.Digest] does. An empty kernelPath means no
// direct boot, and an empty initrdPath means no initrd. The kernel and initrd
// are hashed as streams, so large files are not held in memory. A zero
// features value means [DefaultGuestFeatures]; the VMSA GPA is
// [DefaultVMSAGPA].
func SNPLaunchDigestFiles(firmwarePath, kernelPath, initrdPath, cmdline string,
	vcpus int, sig uint32, features uint64) ([DigestSize]byte, error) {
	cfg, err := newVCPUConfig(vcpus, sig, features, 0)
	if err != nil {
		return [DigestSize]byte{}, err
	}

	var boot *bootHashes
	if kernelPath != "" {
		boot, err = hashBootFiles(kernelPath, initrdPath, cmdline)
		if err != nil {
			return [DigestSize]byte{}, err
		}
	} else if err := checkNoBootArtifacts(initrdPath != "", cmdline); err != nil {
		return [DigestSize]byte{}, err
	}

	firmware, err := os.ReadFile(firmwarePath)
	if err != nil {
		return [DigestSize]byte{}, fmt.Errorf("read firmware: %w", err)
	}
	return snpDigest(firmware, boot, cfg)
}

// hashBootFiles hashes the kernel, initrd and command line of a measured
// direct boot.
func hashBootFiles(kernelPath, initrdPath, cmdline string) (*bootHashes, error) {
	var (
		boot bootHashes
		err  error
	)
	if boot.cmdline, err = hashCmdline(cmdline); err != nil {
		return nil, err
	}
	if boot.kernel, err = hashFile(kernelPath); err != nil {
		return nil, fmt.Errorf("hash kernel: %w", err)
	}
	if boot.initrd, err = hashFile(initrdPath); err != nil {
		return nil, fmt.Errorf("hash initrd: %w", err)
	}
	return &boot, nil
}

// measurer computes one launch digest. Its page buffer is reused for the
// kernel-hash page and the VMSAs.
type measurer struct {
	ld   launchDigest
	page [pageSize]byte
}

// snpDigest runs the QEMU/KVM launch sequence: the firmware as NORMAL
// pages, then the SEV metadata items in table order, then one VMSA per
// vCPU. A nil boot means no direct boot.
func snpDigest(firmware []byte, boot *bootHashes, cfg vcpuConfig) ([DigestSize]byte, error) {
	if err := checkFirmwareSize(len(firmware)); err != nil {
		return [DigestSize]byte{}, err
	}

	layout, err := parseOVMF(firmware)
	if err != nil {
		return [DigestSize]byte{}, err
	}
	if cfg.count > 1 && !layout.hasResetBlock {
		return [DigestSize]byte{}, fmt.Errorf("%w, which the APs of a %d-vCPU guest need, "+
			"so start 1 vCPU or use a firmware with SEV-ES support", ErrNoResetBlock, cfg.count)
	}

	m := &measurer{}
	m.ld.addNormalPages(firmwareEnd-uint64(len(firmware)), firmware)

	if err := m.addSections(layout, boot); err != nil {
		return [DigestSize]byte{}, err
	}

	m.addVMSAs(layout.apResetAddress, cfg)
	return m.ld.digest, nil
}

// checkFirmwareSize checks that an image of size bytes can be mapped below
// 4 GiB page by page.
func checkFirmwareSize(size int) error {
	if size == 0 {
		return errors.New("firmware image is empty")
	}
	if size%pageSize != 0 {
		return fmt.Errorf("firmware image size %d is not a multiple of 4 KiB", size)
	}
	if uint64(size) > firmwareEnd {
		return fmt.Errorf("firmware image size %d exceeds 4 GiB", size)
	}
	return nil
}

// firmwarePagesDigest returns the launch digest after the firmware pages
// alone, the value that sev-snp-measure's --snp-ovmf-hash takes as a seed.
func firmwarePagesDigest(firmware []byte) ([DigestSize]byte, error) {
	if err := checkFirmwareSize(len(firmware)); err != nil {
		return [DigestSize]byte{}, err
	}

	var ld launchDigest
	ld.addNormalPages(firmwareEnd-uint64(len(firmware)), firmware)
	return ld.digest, nil
}

// addSections measures the SEV metadata items the way QEMU prepares them
// for KVM, in table order. Zero-length items add nothing.
func (m *measurer) addSections(layout *ovmfLayout, boot *bootHashes) error {
	if boot != nil {
		if err := checkHashTable(layout); err != nil {
			return err
		}
	}

	for i, s := range layout.sections {
		switch s.typ {
		case sectionSecMem, sectionSVSMCAA:
			m.ld.addEmptyPages(pageZero, s.gpa, s.size)
		case sectionSecrets:
			m.ld.addEmptyPages(pageSecrets, s.gpa, s.size)
		case sectionCPUID:
			m.ld.addEmptyPages(pageCPUID, s.gpa, s.size)
		case sectionKernelHashes:
			if boot == nil {
				m.ld.addEmptyPages(pageZero, s.gpa, s.size)
				continue
			}
			m.addHashTablePages(s, layout.hashTable, boot)
		default:
			return fmt.Errorf("SEV metadata item %d (GPA %#x, size %#x) has %v, "+
				"which this package cannot measure", i, s.gpa, s.size, s.typ)
		}
	}
	return nil
}

// checkHashTable checks that the firmware can take a SEV hash table: it
// names the table's area, the area holds the padded table, and the area lies
// inside a SNP_KERNEL_HASHES item.
func checkHashTable(layout *ovmfLayout) error {
	if !layout.hasHashTable {
		return fmt.Errorf("%w: footer table has no SEV hash table entry", ErrNoKernelHashes)
	}

	table := layout.hashTable
	if table.size < paddedHashTableSize {
		return fmt.Errorf("SEV hash table area of %d bytes at %#x is smaller than the %d-byte table",
			table.size, table.gpa, paddedHashTableSize)
	}

	for _, s := range layout.sections {
		inside := table.gpa >= s.gpa && table.gpa+paddedHashTableSize <= s.gpa+s.size
		if s.typ == sectionKernelHashes && inside {
			return nil
		}
	}
	return fmt.Errorf("%w: no SNP_KERNEL_HASHES metadata item contains the SEV hash table at %#x",
		ErrNoKernelHashes, table.gpa)
}

// addHashTablePages measures a SNP_KERNEL_HASHES item as NORMAL pages of
// zeros with the padded hash table written at its GPA.
func (m *measurer) addHashTablePages(s metadataSection, area gpaRange, boot *bootHashes) {
	var table [paddedHashTableSize]byte
	boot.putTable(table[:])
	tableStart, tableEnd := area.gpa, area.gpa+paddedHashTableSize

	for gpa := s.gpa; gpa < s.gpa+s.size; gpa += pageSize {
		clear(m.page[:])

		// Copy the part of the table that falls into this page.
		lo, hi := max(tableStart, gpa), min(tableEnd, gpa+pageSize)
		if lo < hi {
			copy(m.page[lo-gpa:hi-gpa], table[lo-tableStart:hi-tableStart])
		}
		m.ld.addPage(pageNormal, gpa, m.page[:])
	}
}

// addVMSAs measures one VMSA per vCPU: the BSP at the reset vector, then
// the APs at the SEV-ES reset block address. All APs share one VMSA, so
// its page is hashed once.
func (m *measurer) addVMSAs(apEIP uint32, cfg vcpuConfig) {
	putVMSA(m.page[:], bspResetEIP, cfg.signature, cfg.features)
	m.ld.addPage(pageVMSA, cfg.vmsaGPA, m.page[:])

	if cfg.count == 1 {
		return
	}

	putVMSA(m.page[:], apEIP, cfg.signature, cfg.features)
	apHash := sha512.Sum384(m.page[:])
	for range cfg.count - 1 {
		m.ld.update(pageVMSA, cfg.vmsaGPA, &apHash)
	}
}
