package measurements

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// Errors returned when the firmware lacks what an SNP launch needs. They are
// wrapped with details, so compare with [errors.Is].
var (
	// ErrNoFooterTable means the firmware has no OVMF GUIDed footer table,
	// so it carries no SEV metadata (Debian's CLOUDHV.fd is one such image).
	ErrNoFooterTable = errors.New("firmware has no OVMF GUIDed footer table")

	// ErrNoSEVMetadata means the footer table has no SEV metadata entry or
	// the "ASEV" header it points to is invalid.
	ErrNoSEVMetadata = errors.New("firmware has no SEV metadata")

	// ErrNoKernelHashes means a kernel was given but the firmware has no
	// SNP_KERNEL_HASHES metadata item or no SEV hash table entry, so it
	// cannot verify a measured direct boot. Use an AmdSev build of OVMF.
	ErrNoKernelHashes = errors.New("firmware does not support measured direct boot")

	// ErrNoResetBlock means more than one vCPU was requested but the
	// firmware has no SEV-ES reset block giving the APs' start address.
	ErrNoResetBlock = errors.New("firmware has no SEV-ES reset block")
)

// guid is a GUID in the EFI byte order used by firmware images: the first
// three fields little-endian and the last eight bytes as written.
type guid [guidSize]byte

const guidSize = 16

// mustParseGUID converts the text form of a GUID to its EFI byte order. It
// panics on malformed text, so pass it only constant strings.
func mustParseGUID(text string) guid {
	raw, err := hex.DecodeString(strings.ReplaceAll(text, "-", ""))
	if err != nil || len(raw) != guidSize {
		panic("measurements: invalid GUID " + text)
	}

	var g guid
	binary.LittleEndian.PutUint32(g[0:4], binary.BigEndian.Uint32(raw[0:4]))
	binary.LittleEndian.PutUint16(g[4:6], binary.BigEndian.Uint16(raw[4:6]))
	binary.LittleEndian.PutUint16(g[6:8], binary.BigEndian.Uint16(raw[6:8]))
	copy(g[8:], raw[8:])
	return g
}

// GUIDs of the footer table (edk2 OvmfPkg/ResetVector/Ia16/ResetVectorVtf0.nasm.inc,
// QEMU docs/specs/sev-guest-firmware.rst).
var (
	footerTableGUID    = mustParseGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	sevESResetGUID     = mustParseGUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
	sevMetadataGUID    = mustParseGUID("dc886566-984a-4798-a75e-5585a7bf67cc")
	sevHashTableGUID   = mustParseGUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
	sevSecretBlockGUID = mustParseGUID("4c2eb361-7d9b-4cc3-8081-127c90d3d294")
)

// Footer table layout. The table ends footerTableEndGap bytes before the end
// of the image. Its last entry is the footer: a u16 total table length and
// footerTableGUID. Every entry, read backwards from its end, is a GUID, a
// u16 length covering the whole entry, then the entry's data.
const (
	footerTableEndGap = 0x20
	footerEntryHeader = 2 + guidSize // u16 length + GUID, after the data
)

// footerEntry is one entry of the footer table.
type footerEntry struct {
	guid guid
	data []byte
}

// parseFooterTable returns the entries of the footer table of firmware, in
// the order they are found walking back from the footer.
func parseFooterTable(firmware []byte) ([]footerEntry, error) {
	end := len(firmware) - footerTableEndGap
	if end < footerEntryHeader {
		return nil, fmt.Errorf("%w: image of %d bytes is too small", ErrNoFooterTable, len(firmware))
	}

	footerGUID := guid(firmware[end-guidSize : end])
	if footerGUID != footerTableGUID {
		return nil, fmt.Errorf("%w: footer GUID not found %d bytes before the end of the image",
			ErrNoFooterTable, footerTableEndGap+guidSize)
	}

	total := int(binary.LittleEndian.Uint16(firmware[end-footerEntryHeader:]))
	if total < footerEntryHeader || total > end {
		return nil, fmt.Errorf("%w: invalid table length %d", ErrNoFooterTable, total)
	}

	start := end - total
	var entries []footerEntry
	for pos := end - footerEntryHeader; pos > start; {
		if pos-start < footerEntryHeader {
			return nil, fmt.Errorf("%w: truncated entry at image offset %#x", ErrNoFooterTable, pos)
		}

		entryGUID := guid(firmware[pos-guidSize : pos])
		length := int(binary.LittleEndian.Uint16(firmware[pos-footerEntryHeader:]))
		if length < footerEntryHeader || length > pos-start {
			return nil, fmt.Errorf("%w: entry at image offset %#x has invalid length %d",
				ErrNoFooterTable, pos, length)
		}

		entries = append(entries, footerEntry{
			guid: entryGUID,
			data: firmware[pos-length : pos-footerEntryHeader],
		})
		pos -= length
	}
	return entries, nil
}

// findFooterEntry returns the data of the first entry with guid g and
// whether it was found.
func findFooterEntry(entries []footerEntry, g guid) ([]byte, bool) {
	for _, e := range entries {
		if e.guid == g {
			return e.data, true
		}
	}
	return nil, false
}

// sectionType is the type of an SEV metadata item (edk2
// OvmfPkg/ResetVector/X64/OvmfSevMetadata.nasm.inc).
type sectionType uint32

const (
	sectionSecMem       sectionType = 1    // SNP_SEC_MEM: RAM the firmware expects pre-validated
	sectionSecrets      sectionType = 2    // SNP_SECRETS: the SNP secrets page
	sectionCPUID        sectionType = 3    // CPUID: the SNP CPUID page
	sectionSVSMCAA      sectionType = 4    // SVSM_CAA: the SVSM calling area
	sectionKernelHashes sectionType = 0x10 // SNP_KERNEL_HASHES: the page holding the SEV hash table
)

// String returns the edk2 name of t.
func (t sectionType) String() string {
	switch t {
	case sectionSecMem:
		return "SNP_SEC_MEM"
	case sectionSecrets:
		return "SNP_SECRETS"
	case sectionCPUID:
		return "CPUID"
	case sectionSVSMCAA:
		return "SVSM_CAA"
	case sectionKernelHashes:
		return "SNP_KERNEL_HASHES"
	}
	return fmt.Sprintf("unknown type %#x", uint32(t))
}

// metadataSection is one SEV metadata item: a range of guest memory and how
// the launch prepares it.
type metadataSection struct {
	gpa  uint64
	size uint64
	typ  sectionType
}

// SEV metadata layout: a 16-byte header ("ASEV", u32 length, u32 version,
// u32 item count), then 12-byte items (u32 GPA, u32 size, u32 type).
const (
	metadataSignature    = "ASEV"
	metadataVersion      = 1
	metadataLengthOffset = 4
	metadataVerOffset    = 8
	metadataCountOffset  = 12
	metadataHeaderSize   = 16
	metadataItemSize     = 12
	metadataItemSizeOff  = 4
	metadataItemTypeOff  = 8
)

// gpaRange is a range of guest physical memory named by a footer entry.
type gpaRange struct {
	gpa  uint64
	size uint64
}

// ovmfLayout is the part of an OVMF image's footer table and SEV metadata
// that an SNP launch uses.
type ovmfLayout struct {
	sections []metadataSection // SEV metadata items in table order

	// apResetAddress is the SEV-ES reset block value: bits 31:16 are the
	// APs' CS base bits 31:16 and bits 15:0 their IP. Zero if absent.
	apResetAddress uint32
	hasResetBlock  bool

	hashTable    gpaRange // the SEV hash table, inside a SNP_KERNEL_HASHES item
	hasHashTable bool

	secretBlock    gpaRange // the SEV and SEV-ES launch-secret area
	hasSecretBlock bool
}

// parseOVMF reads the footer table and SEV metadata of firmware.
func parseOVMF(firmware []byte) (*ovmfLayout, error) {
	entries, err := parseFooterTable(firmware)
	if err != nil {
		return nil, err
	}

	layout := &ovmfLayout{}
	if data, ok := findFooterEntry(entries, sevESResetGUID); ok {
		if len(data) < 4 {
			return nil, fmt.Errorf("SEV-ES reset block entry has %d bytes, expected 4", len(data))
		}
		layout.apResetAddress = binary.LittleEndian.Uint32(data)
		layout.hasResetBlock = true
	}

	if data, ok := findFooterEntry(entries, sevHashTableGUID); ok {
		layout.hashTable, err = parseGPARange("SEV hash table", data)
		if err != nil {
			return nil, err
		}
		layout.hasHashTable = true
	}

	if data, ok := findFooterEntry(entries, sevSecretBlockGUID); ok {
		layout.secretBlock, err = parseGPARange("SEV secret block", data)
		if err != nil {
			return nil, err
		}
		layout.hasSecretBlock = true
	}

	data, ok := findFooterEntry(entries, sevMetadataGUID)
	if !ok {
		return nil, fmt.Errorf("%w: footer table has no SEV metadata offset entry", ErrNoSEVMetadata)
	}
	if len(data) < 4 {
		return nil, fmt.Errorf("%w: metadata offset entry has %d bytes, expected 4",
			ErrNoSEVMetadata, len(data))
	}
	layout.sections, err = parseSEVMetadata(firmware, binary.LittleEndian.Uint32(data))
	if err != nil {
		return nil, err
	}
	return layout, nil
}

// parseGPARange reads the u32 GPA and u32 size of a footer entry.
func parseGPARange(name string, data []byte) (gpaRange, error) {
	if len(data) < 8 {
		return gpaRange{}, fmt.Errorf("%s entry has %d bytes, expected 8", name, len(data))
	}
	return gpaRange{
		gpa:  uint64(binary.LittleEndian.Uint32(data[0:4])),
		size: uint64(binary.LittleEndian.Uint32(data[4:8])),
	}, nil
}

// parseSEVMetadata reads the "ASEV" items found offsetFromEnd bytes before
// the end of firmware.
func parseSEVMetadata(firmware []byte, offsetFromEnd uint32) ([]metadataSection, error) {
	if uint64(offsetFromEnd) > uint64(len(firmware)) || offsetFromEnd < metadataHeaderSize {
		return nil, fmt.Errorf("%w: metadata offset %#x is outside the %d-byte image",
			ErrNoSEVMetadata, offsetFromEnd, len(firmware))
	}

	header := firmware[len(firmware)-int(offsetFromEnd):]
	if string(header[:len(metadataSignature)]) != metadataSignature {
		return nil, fmt.Errorf("%w: signature %q at %#x from the end of the image, expected %q",
			ErrNoSEVMetadata, header[:len(metadataSignature)], offsetFromEnd, metadataSignature)
	}

	version := binary.LittleEndian.Uint32(header[metadataVerOffset:])
	if version != metadataVersion {
		return nil, fmt.Errorf("%w: unsupported version %d, expected %d",
			ErrNoSEVMetadata, version, metadataVersion)
	}

	length := uint64(binary.LittleEndian.Uint32(header[metadataLengthOffset:]))
	count := uint64(binary.LittleEndian.Uint32(header[metadataCountOffset:]))
	itemsEnd := metadataHeaderSize + count*metadataItemSize
	if length < itemsEnd || length > uint64(len(header)) {
		return nil, fmt.Errorf("%w: length %d does not fit %d items and the image",
			ErrNoSEVMetadata, length, count)
	}

	sections := make([]metadataSection, 0, count)
	for i := range count {
		item := header[metadataHeaderSize+i*metadataItemSize:]
		s := metadataSection{
			gpa:  uint64(binary.LittleEndian.Uint32(item)),
			size: uint64(binary.LittleEndian.Uint32(item[metadataItemSizeOff:])),
			typ:  sectionType(binary.LittleEndian.Uint32(item[metadataItemTypeOff:])),
		}
		if s.gpa%pageSize != 0 || s.size%pageSize != 0 {
			return nil, fmt.Errorf("SEV metadata item %d (%v at %#x, size %#x) is not page aligned",
				i, s.typ, s.gpa, s.size)
		}
		sections = append(sections, s)
	}
	return sections, nil
}
