package measurements

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
)

// SEV hash table layout (edk2 OvmfPkg/AmdSev/BlobVerifierLibSevHashes, QEMU
// target/i386/sev.c). The header is a GUID and a u16 table length; each of
// the three entries is a GUID, a u16 entry length and a SHA-256. QEMU writes
// the table zero-padded to a multiple of 16 bytes.
const (
	hashLengthOffset    = guidSize // u16 length after the GUID, in the header and each entry
	hashTableHeaderSize = hashLengthOffset + 2
	hashDigestOffset    = hashLengthOffset + 2
	hashEntrySize       = hashDigestOffset + sha256.Size
	hashTableSize       = hashTableHeaderSize + 3*hashEntrySize // 168
	paddedHashTableSize = (hashTableSize + 15) &^ 15            // 176
)

var (
	hashTableGUID   = mustParseGUID("9438d606-4f22-4cc9-b479-a793d411fd21")
	cmdlineHashGUID = mustParseGUID("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
	initrdHashGUID  = mustParseGUID("44baf731-3a2f-4bd7-9af1-41e29169781d")
	kernelHashGUID  = mustParseGUID("4de79437-abd2-427f-b835-d5b172d2045b")
)

// bootHashes are the SHA-256 digests of a measured direct boot, as the VMM
// writes them into the SEV hash table.
type bootHashes struct {
	kernel  [sha256.Size]byte // the whole kernel file as given
	initrd  [sha256.Size]byte // the initrd file, or empty input if none
	cmdline [sha256.Size]byte // the command line followed by one NUL byte
}

// hashCmdline returns the SHA-256 of cmdline and the terminating NUL that
// QEMU includes. A NUL inside cmdline is rejected because QEMU's C string
// would end there and hash different bytes.
func hashCmdline(cmdline string) ([sha256.Size]byte, error) {
	if strings.IndexByte(cmdline, 0) >= 0 {
		return [sha256.Size]byte{}, fmt.Errorf("kernel command line contains a NUL byte at offset %d",
			strings.IndexByte(cmdline, 0))
	}

	h := sha256.New()
	io.WriteString(h, cmdline)
	h.Write([]byte{0})

	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum, nil
}

// newBootHashes hashes in-memory boot artifacts. A nil initrd hashes as
// empty input, like QEMU without -initrd.
func newBootHashes(kernel, initrd []byte, cmdline string) (*bootHashes, error) {
	cmdlineHash, err := hashCmdline(cmdline)
	if err != nil {
		return nil, err
	}
	return &bootHashes{
		kernel:  sha256.Sum256(kernel),
		initrd:  sha256.Sum256(initrd),
		cmdline: cmdlineHash,
	}, nil
}

// hashFile returns the SHA-256 of the file at path, read as a stream so a
// large initrd is not held in memory. An empty path hashes as empty input.
func hashFile(path string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	h := sha256.New()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return sum, err
		}
		defer f.Close()

		if _, err := io.Copy(h, f); err != nil {
			return sum, fmt.Errorf("read %s: %w", path, err)
		}
	}
	h.Sum(sum[:0])
	return sum, nil
}

// putHashEntry writes one hash table entry at b.
func putHashEntry(b []byte, g guid, sum *[sha256.Size]byte) {
	copy(b, g[:])
	binary.LittleEndian.PutUint16(b[hashLengthOffset:], uint16(hashEntrySize))
	copy(b[hashDigestOffset:], sum[:])
}

// putTable writes the padded SEV hash table into b, which has at least
// paddedHashTableSize bytes. Entries follow the order cmdline, initrd,
// kernel, which OVMF expects.
func (h *bootHashes) putTable(b []byte) {
	table := b[:paddedHashTableSize]
	clear(table)

	copy(table, hashTableGUID[:])
	binary.LittleEndian.PutUint16(table[hashLengthOffset:], uint16(hashTableSize))

	entries := table[hashTableHeaderSize:]
	putHashEntry(entries[0*hashEntrySize:], cmdlineHashGUID, &h.cmdline)
	putHashEntry(entries[1*hashEntrySize:], initrdHashGUID, &h.initrd)
	putHashEntry(entries[2*hashEntrySize:], kernelHashGUID, &h.kernel)
}
