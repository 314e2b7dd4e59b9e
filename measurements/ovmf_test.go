package measurements

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"cove.dev/cove/internal/testenv"
)

// fixturePath is the last 4 KiB of an edk2-stable202405 AmdSevX64 OVMF
// build, the fixture of sev-snp-measure's tests (see testdata/README.md).
const fixturePath = "testdata/ovmf_AmdSev_suffix.bin"

// debianOVMFSHA256 is the sha256 of Debian's OVMF.amdsev.fd from
// ovmf-amdsev 2026.08+ds-2, the firmware whose layout the tests expect.
const debianOVMFSHA256 = "3e4fd0b3fe3b2dbe481c3d9e99418a034174f26cbe1f55aa212b0f18c12d2d6f"

// readFixture returns a fresh copy of the 4 KiB fixture, which tests may
// modify.
func readFixture(t testing.TB) []byte {
	t.Helper()
	fw, err := os.ReadFile(fixturePath)
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// readDebianOVMF returns Debian's OVMF.amdsev.fd, skipping the test when it
// is not installed (failing under CI=true), and checks its checksum.
func readDebianOVMF(t testing.TB) []byte {
	t.Helper()
	fw, err := os.ReadFile(testenv.OVMF(t))
	if err != nil {
		t.Fatal(err)
	}

	if sum := sha256.Sum256(fw); hex.EncodeToString(sum[:]) != debianOVMFSHA256 {
		t.Fatalf("OVMF.amdsev.fd sha256 = %x, want %s (ovmf-amdsev 2026.08+ds-2)", sum, debianOVMFSHA256)
	}
	return fw
}

// replaceFooterGUID overwrites the GUID g in the footer table of fw with an
// unassigned GUID, so the parser no longer finds that entry.
func replaceFooterGUID(t testing.TB, fw []byte, g guid) {
	t.Helper()
	i := bytes.LastIndex(fw, g[:])
	if i < 0 {
		t.Fatalf("GUID %x not found in firmware", g)
	}
	unknown := mustParseGUID("00000000-0000-0000-0000-000000000001")
	copy(fw[i:], unknown[:])
}

// setSectionType changes the type of every SEV metadata item of type from
// to type to.
func setSectionType(t testing.TB, fw []byte, from, to sectionType) {
	t.Helper()
	entries, err := parseFooterTable(fw)
	if err != nil {
		t.Fatal(err)
	}
	data, ok := findFooterEntry(entries, sevMetadataGUID)
	if !ok {
		t.Fatal("fixture has no SEV metadata entry")
	}

	header := fw[len(fw)-int(binary.LittleEndian.Uint32(data)):]
	count := int(binary.LittleEndian.Uint32(header[metadataCountOffset:]))
	for i := range count {
		typeField := header[metadataHeaderSize+i*metadataItemSize+metadataItemTypeOff:]
		if sectionType(binary.LittleEndian.Uint32(typeField)) == from {
			binary.LittleEndian.PutUint32(typeField, uint32(to))
		}
	}
}

func TestParseGUIDUsesEFIByteOrder(t *testing.T) {
	got := mustParseGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	want := mustHex(t, "de82b596b21ff745baeaa366c55a082d")
	if !bytes.Equal(got[:], want) {
		t.Errorf("GUID bytes = %x, want %x", got, want)
	}
}

func TestParseOVMFDebianAmdSevLayout(t *testing.T) {
	layout, err := parseOVMF(readDebianOVMF(t))
	if err != nil {
		t.Fatal(err)
	}

	want := []metadataSection{
		{gpa: 0x800000, size: 0x9000, typ: sectionSecMem},
		{gpa: 0x80A000, size: 0x3000, typ: sectionSecMem},
		{gpa: 0x80D000, size: 0x1000, typ: sectionSecrets},
		{gpa: 0x80E000, size: 0x1000, typ: sectionCPUID},
		{gpa: 0x80F000, size: 0x1000, typ: sectionSVSMCAA},
		{gpa: 0x811000, size: 0x1F000, typ: sectionSecMem},
		{gpa: 0x810000, size: 0x1000, typ: sectionKernelHashes},
	}
	if len(layout.sections) != len(want) {
		t.Fatalf("%d SEV metadata items, want %d: %+v", len(layout.sections), len(want), layout.sections)
	}
	for i := range want {
		if layout.sections[i] != want[i] {
			t.Errorf("item %d = %+v, want %+v", i, layout.sections[i], want[i])
		}
	}

	if !layout.hasHashTable || layout.hashTable != (gpaRange{gpa: 0x810C00, size: 0x400}) {
		t.Errorf("hash table = %+v (present %v), want GPA 0x810C00 size 0x400",
			layout.hashTable, layout.hasHashTable)
	}
	if !layout.hasSecretBlock || layout.secretBlock != (gpaRange{gpa: 0x810000, size: 0xC00}) {
		t.Errorf("secret block = %+v (present %v), want GPA 0x810000 size 0xC00",
			layout.secretBlock, layout.hasSecretBlock)
	}
	if !layout.hasResetBlock || layout.apResetAddress != 0x0080B004 {
		t.Errorf("SEV-ES reset block = %#x (present %v), want 0x0080B004",
			layout.apResetAddress, layout.hasResetBlock)
	}
}

func TestParseFooterTableDebianAmdSevLength(t *testing.T) {
	fw := readDebianOVMF(t)
	end := len(fw) - footerTableEndGap

	if got := binary.LittleEndian.Uint16(fw[end-footerEntryHeader:]); got != 158 {
		t.Errorf("footer table length = %d, want 158", got)
	}

	entries, err := parseFooterTable(fw)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []guid{sevESResetGUID, sevMetadataGUID, sevHashTableGUID, sevSecretBlockGUID} {
		if _, ok := findFooterEntry(entries, g); !ok {
			t.Errorf("footer table has no entry %x", g)
		}
	}
}

func TestParseOVMFFixtureLayout(t *testing.T) {
	layout, err := parseOVMF(readFixture(t))
	if err != nil {
		t.Fatal(err)
	}

	// edk2-stable202405 lists the kernel-hash page before 0x811000, unlike
	// the 2026.08 build above.
	want := []metadataSection{
		{gpa: 0x800000, size: 0x9000, typ: sectionSecMem},
		{gpa: 0x80A000, size: 0x3000, typ: sectionSecMem},
		{gpa: 0x80D000, size: 0x1000, typ: sectionSecrets},
		{gpa: 0x80E000, size: 0x1000, typ: sectionCPUID},
		{gpa: 0x80F000, size: 0x1000, typ: sectionSVSMCAA},
		{gpa: 0x810000, size: 0x1000, typ: sectionKernelHashes},
		{gpa: 0x811000, size: 0xF000, typ: sectionSecMem},
	}
	if len(layout.sections) != len(want) {
		t.Fatalf("%d SEV metadata items, want %d: %+v", len(layout.sections), len(want), layout.sections)
	}
	for i := range want {
		if layout.sections[i] != want[i] {
			t.Errorf("item %d = %+v, want %+v", i, layout.sections[i], want[i])
		}
	}
	if layout.hashTable != (gpaRange{gpa: 0x810C00, size: 0x400}) {
		t.Errorf("hash table = %+v, want GPA 0x810C00 size 0x400", layout.hashTable)
	}
	if layout.apResetAddress != 0x0080B004 {
		t.Errorf("SEV-ES reset block = %#x, want 0x0080B004", layout.apResetAddress)
	}
}

func TestParseOVMFErrors(t *testing.T) {
	tests := []struct {
		name   string
		modify func(t testing.TB, fw []byte) []byte
		want   error
	}{
		{
			name:   "no footer table",
			modify: func(t testing.TB, fw []byte) []byte { return make([]byte, pageSize) },
			want:   ErrNoFooterTable,
		},
		{
			name:   "image smaller than footer",
			modify: func(t testing.TB, fw []byte) []byte { return fw[len(fw)-0x20:] },
			want:   ErrNoFooterTable,
		},
		{
			name: "footer table length past image start",
			modify: func(t testing.TB, fw []byte) []byte {
				end := len(fw) - footerTableEndGap
				binary.LittleEndian.PutUint16(fw[end-footerEntryHeader:], 0xFFFF)
				return fw
			},
			want: ErrNoFooterTable,
		},
		{
			name: "no SEV metadata entry",
			modify: func(t testing.TB, fw []byte) []byte {
				replaceFooterGUID(t, fw, sevMetadataGUID)
				return fw
			},
			want: ErrNoSEVMetadata,
		},
		{
			name: "bad ASEV signature",
			modify: func(t testing.TB, fw []byte) []byte {
				i := bytes.LastIndex(fw, []byte(metadataSignature))
				copy(fw[i:], "XSEV")
				return fw
			},
			want: ErrNoSEVMetadata,
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseOVMF(tt.modify(t, readFixture(t)))
			if !errors.Is(err, tt.want) {
				t.Errorf("parseOVMF error = %v, want %v", err, tt.want)
			}
		})
	}
}
