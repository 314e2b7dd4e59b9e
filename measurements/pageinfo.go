package measurements

import (
	"crypto/sha512"
	"encoding/binary"
)

// pageSize is the size of one page given to SNP_LAUNCH_UPDATE.
const pageSize = 4096

// DigestSize is the size of the SNP launch digest, SHA-384.
const DigestSize = sha512.Size384

// PAGE_INFO layout (AMD SEV-SNP Firmware ABI, pub. 56860, SNP_LAUNCH_UPDATE).
// Each measured page replaces the launch digest with SHA-384 of this packed
// little-endian structure.
const (
	pageInfoDigestCurOffset = 0x00 // 48 bytes: the launch digest before this page
	pageInfoContentsOffset  = 0x30 // 48 bytes: SHA-384 of the page, or zeros
	pageInfoLengthOffset    = 0x60 // u16: size of the structure
	pageInfoTypeOffset      = 0x62 // u8: page type
	pageInfoIMIOffset       = 0x63 // u8: bit 0 IMI_PAGE, always 0 at launch
	pageInfoVMPLOffset      = 0x64 // 4 bytes: VMPL permissions and reserved, 0 at launch
	pageInfoGPAOffset       = 0x68 // u64: guest physical address of the page
	pageInfoSize            = 0x70
)

// pageType is the PAGE_TYPE of a launch update. The numbers are the SNP
// firmware's, which KVM also uses for KVM_SEV_SNP_PAGE_TYPE_*.
type pageType uint8

const (
	pageNormal     pageType = 1
	pageVMSA       pageType = 2
	pageZero       pageType = 3
	pageUnmeasured pageType = 4
	pageSecrets    pageType = 5
	pageCPUID      pageType = 6
)

// launchDigest is the running SNP launch digest of one guest. Its zero
// value is the digest at SNP_LAUNCH_START, 48 zero bytes.
type launchDigest struct {
	digest   [DigestSize]byte
	pageInfo [pageInfoSize]byte
}

// fillPageInfo writes the PAGE_INFO for one page into d.pageInfo, chained on
// the current digest.
func (d *launchDigest) fillPageInfo(typ pageType, gpa uint64, contents *[DigestSize]byte) {
	info := d.pageInfo[:]

	copy(info[pageInfoDigestCurOffset:pageInfoContentsOffset], d.digest[:])
	copy(info[pageInfoContentsOffset:pageInfoLengthOffset], contents[:])
	binary.LittleEndian.PutUint16(info[pageInfoLengthOffset:], pageInfoSize)
	info[pageInfoTypeOffset] = byte(typ)
	info[pageInfoIMIOffset] = 0
	clear(info[pageInfoVMPLOffset:pageInfoGPAOffset])
	binary.LittleEndian.PutUint64(info[pageInfoGPAOffset:], gpa)
}

// update extends the digest with one page whose CONTENTS field is
// contents. Callers pass a precomputed page hash to measure identical pages
// (the VMSAs of the APs) without hashing each again.
func (d *launchDigest) update(typ pageType, gpa uint64, contents *[DigestSize]byte) {
	d.fillPageInfo(typ, gpa, contents)
	d.digest = sha512.Sum384(d.pageInfo[:])
}

// addPage extends the digest with a NORMAL or VMSA page, whose CONTENTS is
// the SHA-384 of the 4096 page bytes.
func (d *launchDigest) addPage(typ pageType, gpa uint64, page []byte) {
	contents := sha512.Sum384(page[:pageSize])
	d.update(typ, gpa, &contents)
}

// addEmptyPages extends the digest with the pages of [gpa, gpa+size) as
// typ pages, whose CONTENTS is 48 zero bytes (ZERO, UNMEASURED, SECRETS and
// CPUID pages).
func (d *launchDigest) addEmptyPages(typ pageType, gpa, size uint64) {
	var zero [DigestSize]byte
	for off := uint64(0); off < size; off += pageSize {
		d.update(typ, gpa+off, &zero)
	}
}

// addNormalPages extends the digest with data as NORMAL pages starting at
// gpa. The length of data is a multiple of pageSize.
func (d *launchDigest) addNormalPages(gpa uint64, data []byte) {
	for off := 0; off < len(data); off += pageSize {
		d.addPage(pageNormal, gpa+uint64(off), data[off:off+pageSize])
	}
}
