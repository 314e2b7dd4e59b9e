package measurements

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// VMSA field offsets (AMD64 APM vol. 2, table B-4 "VMSA layout"). Only the
// fields that the QEMU/KVM reset state sets are named; all others are zero.
const (
	vmsaES          = 0x00
	vmsaCS          = 0x10
	vmsaSS          = 0x20
	vmsaDS          = 0x30
	vmsaFS          = 0x40
	vmsaGS          = 0x50
	vmsaGDTR        = 0x60
	vmsaLDTR        = 0x70
	vmsaIDTR        = 0x80
	vmsaTR          = 0x90
	vmsaEFER        = 0xD0
	vmsaCR4         = 0x148
	vmsaCR0         = 0x158
	vmsaDR7         = 0x160
	vmsaDR6         = 0x168
	vmsaRFLAGS      = 0x170
	vmsaRIP         = 0x178
	vmsaGPAT        = 0x268
	vmsaRDX         = 0x310
	vmsaSEVFeatures = 0x3B0
	vmsaXCR0        = 0x3E8
	vmsaMXCSR       = 0x408 // u32
	vmsaX87FCW      = 0x410 // u16
)

// Segment register layout inside the VMSA: u16 selector, u16 attributes,
// u32 limit, u64 base.
const (
	segmentAttribOffset = 2
	segmentLimitOffset  = 4
	segmentBaseOffset   = 8
)

// Reset state of a QEMU/KVM vCPU as KVM's sev_es_sync_vmsa writes it into
// the VMSA.
const (
	resetSegmentLimit = 0xFFFF
	resetCodeSelector = 0xF000
	attribData        = 0x0093 // present, read/write, accessed
	attribCode        = 0x009B // present, execute/read, accessed
	attribLDT         = 0x0082
	attribBusyTSS     = 0x008B
	resetEFER         = 0x1000 // SVME
	resetCR4          = 0x40   // MCE
	resetCR0          = 0x10   // ET
	resetDR7          = 0x400
	resetDR6          = 0xFFFF0FF0
	resetRFLAGS       = 0x2
	resetGPAT         = 0x0007040600070406
	resetXCR0         = 0x1
	resetMXCSR        = 0x1F80
	resetX87FCW       = 0x037F

	// bspResetEIP is the x86 reset vector where the BSP starts.
	bspResetEIP = 0xFFFFFFF0
)

// putSegment writes one segment register into the VMSA page at off.
func putSegment(page []byte, off int, selector, attrib uint16, limit uint32, base uint64) {
	seg := page[off:]
	binary.LittleEndian.PutUint16(seg, selector)
	binary.LittleEndian.PutUint16(seg[segmentAttribOffset:], attrib)
	binary.LittleEndian.PutUint32(seg[segmentLimitOffset:], limit)
	binary.LittleEndian.PutUint64(seg[segmentBaseOffset:], base)
}

// putVMSA writes into page the VMSA of a QEMU/KVM vCPU that starts at eip
// in real mode: CS base is eip with the low 16 bits cleared, RIP the low 16
// bits. signature is the vCPU's CPUID Fn0000_0001_EAX, which the
// reset state holds in RDX, and features its SEV_FEATURES.
func putVMSA(page []byte, eip uint32, signature uint32, features uint64) {
	page = page[:pageSize]
	clear(page)

	for _, off := range []int{vmsaES, vmsaDS, vmsaFS, vmsaGS} {
		putSegment(page, off, 0, attribData, resetSegmentLimit, 0)
	}
	putSegment(page, vmsaCS, resetCodeSelector, attribCode, resetSegmentLimit, uint64(eip&0xFFFF0000))
	putSegment(page, vmsaSS, 0, attribData, resetSegmentLimit, 0)
	putSegment(page, vmsaGDTR, 0, 0, resetSegmentLimit, 0)
	putSegment(page, vmsaIDTR, 0, 0, resetSegmentLimit, 0)
	putSegment(page, vmsaLDTR, 0, attribLDT, resetSegmentLimit, 0)
	putSegment(page, vmsaTR, 0, attribBusyTSS, resetSegmentLimit, 0)

	le := binary.LittleEndian
	le.PutUint64(page[vmsaEFER:], resetEFER)
	le.PutUint64(page[vmsaCR4:], resetCR4)
	le.PutUint64(page[vmsaCR0:], resetCR0)
	le.PutUint64(page[vmsaDR7:], resetDR7)
	le.PutUint64(page[vmsaDR6:], resetDR6)
	le.PutUint64(page[vmsaRFLAGS:], resetRFLAGS)
	le.PutUint64(page[vmsaRIP:], uint64(eip&0xFFFF))
	le.PutUint64(page[vmsaGPAT:], resetGPAT)
	le.PutUint64(page[vmsaRDX:], uint64(signature))
	le.PutUint64(page[vmsaSEVFeatures:], features)
	le.PutUint64(page[vmsaXCR0:], resetXCR0)
	le.PutUint32(page[vmsaMXCSR:], resetMXCSR)
	le.PutUint16(page[vmsaX87FCW:], resetX87FCW)
}

// CPUID Fn0000_0001_EAX signatures of QEMU's AMD EPYC CPU models, for
// [SNPLaunch.VCPUSignature]. With -cpu host or Cloud Hypervisor the guest
// gets the host's own value, whose stepping can differ from the model's, so
// read CPUID on the host instead.
const (
	SignatureEPYC      uint32 = 0x00800F12 // EPYC to EPYC-v4: family 23, model 1, stepping 2
	SignatureEPYCRome  uint32 = 0x00830F10 // family 23, model 49, stepping 0
	SignatureEPYCMilan uint32 = 0x00A00F11 // family 25, model 1, stepping 1
	SignatureEPYCGenoa uint32 = 0x00A10F10 // family 25, model 17, stepping 0
	SignatureEPYCTurin uint32 = 0x00B00F00 // family 26, model 0, stepping 0
)

// qemuModelSignatures maps QEMU -cpu model names to their signatures. The
// names are those of QEMU's builtin_x86_defs as listed by virtee/sev-snp-measure
// (sevsnpmeasure/vcpu_types.py). Versions of a model share its family, model
// and stepping.
var qemuModelSignatures = map[string]uint32{
	"EPYC":          SignatureEPYC,
	"EPYC-v1":       SignatureEPYC,
	"EPYC-v2":       SignatureEPYC,
	"EPYC-IBPB":     SignatureEPYC,
	"EPYC-v3":       SignatureEPYC,
	"EPYC-v4":       SignatureEPYC,
	"EPYC-Rome":     SignatureEPYCRome,
	"EPYC-Rome-v1":  SignatureEPYCRome,
	"EPYC-Rome-v2":  SignatureEPYCRome,
	"EPYC-Rome-v3":  SignatureEPYCRome,
	"EPYC-Milan":    SignatureEPYCMilan,
	"EPYC-Milan-v1": SignatureEPYCMilan,
	"EPYC-Milan-v2": SignatureEPYCMilan,
	"EPYC-Genoa":    SignatureEPYCGenoa,
	"EPYC-Genoa-v1": SignatureEPYCGenoa,
	"EPYC-Turin":    SignatureEPYCTurin,
}

// QEMUModelSignature returns the CPUID Fn0000_0001_EAX signature of the
// QEMU CPU model name, such as "EPYC-v4" or "EPYC-Milan". Names are
// case-sensitive, as on QEMU's command line.
func QEMUModelSignature(name string) (uint32, error) {
	sig, ok := qemuModelSignatures[name]
	if !ok {
		names := make([]string, 0, len(qemuModelSignatures))
		for n := range qemuModelSignatures {
			names = append(names, n)
		}
		sort.Strings(names)
		return 0, fmt.Errorf("unknown QEMU CPU model %q (known models: %s)",
			name, strings.Join(names, ", "))
	}
	return sig, nil
}

// CPUIDSignature encodes a CPU family, model and stepping as CPUID
// Fn0000_0001_EAX (AMD CPUID specification, pub. 25481): families above 0xF
// put the excess in the extended family field, and the model's high nibble
// goes to the extended model field.
func CPUIDSignature(family, model, stepping int) (uint32, error) {
	if family < 0 || family > 0xF+0xFF || model < 0 || model > 0xFF || stepping < 0 || stepping > 0xF {
		return 0, fmt.Errorf("CPU family %d, model %d, stepping %d out of range "+
			"(family 0-270, model 0-255, stepping 0-15)", family, model, stepping)
	}

	baseFamily, extFamily := family, 0
	if family > 0xF {
		baseFamily, extFamily = 0xF, family-0xF
	}
	sig := extFamily<<20 | (model>>4)<<16 | baseFamily<<8 | (model&0xF)<<4 | stepping
	return uint32(sig), nil
}
