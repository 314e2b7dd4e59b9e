package measurements

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

func TestHashCmdlineIncludesNUL(t *testing.T) {
	tests := []struct {
		cmdline string
		want    string
	}{
		// SHA-256 of the single byte 0x00.
		{"", "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
	}

	for _, tt := range tests {
		got, err := hashCmdline(tt.cmdline)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(got[:]) != tt.want {
			t.Errorf("hashCmdline(%q) = %x, want %s", tt.cmdline, got, tt.want)
		}
	}
}

func TestHashCmdlineRejectsNUL(t *testing.T) {
	if _, err := hashCmdline("console=ttyS0\x00quiet"); err == nil {
		t.Error("hashCmdline accepted a command line with a NUL byte")
	}
}

func TestHashTableLayout(t *testing.T) {
	boot, err := newBootHashes([]byte("fake-kernel"), []byte("fake-initrd"), "")
	if err != nil {
		t.Fatal(err)
	}

	table := make([]byte, paddedHashTableSize+8)
	for i := range table {
		table[i] = 0xAA // shows whether putTable clears the padding
	}
	boot.putTable(table)

	if got := hashTableSize; got != 168 {
		t.Errorf("table size = %d, want 168", got)
	}
	if got := paddedHashTableSize; got != 176 {
		t.Errorf("padded table size = %d, want 176", got)
	}
	if got := table[:guidSize]; !bytes.Equal(got, hashTableGUID[:]) {
		t.Errorf("header GUID = %x, want %x", got, hashTableGUID)
	}
	if got := binary.LittleEndian.Uint16(table[hashLengthOffset:]); got != 168 {
		t.Errorf("header length = %d, want 168", got)
	}

	entries := []struct {
		name string
		guid guid
		hash string
	}{
		{"cmdline", cmdlineHashGUID, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"},
		{"initrd", initrdHashGUID, "ff43a7a603f9efc141aba0bb4bbe9ce61c14a81e0ae1efd0db49d711b8e4ce2a"},
		{"kernel", kernelHashGUID, "7496ba9cf88c446ef92e8392af31c308cea0f893dc4668080405ac926c803ef7"},
	}
	for i, e := range entries {
		entry := table[hashTableHeaderSize+i*hashEntrySize:]
		if !bytes.Equal(entry[:guidSize], e.guid[:]) {
			t.Errorf("%s entry GUID = %x, want %x", e.name, entry[:guidSize], e.guid)
		}
		if got := binary.LittleEndian.Uint16(entry[hashLengthOffset:]); got != 50 {
			t.Errorf("%s entry length = %d, want 50", e.name, got)
		}
		if got := hex.EncodeToString(entry[hashDigestOffset:hashEntrySize]); got != e.hash {
			t.Errorf("%s entry hash = %s, want %s", e.name, got, e.hash)
		}
	}

	padding := table[hashTableSize:paddedHashTableSize]
	if !bytes.Equal(padding, make([]byte, len(padding))) {
		t.Errorf("padding = %x, want zeros", padding)
	}
	if table[paddedHashTableSize] != 0xAA {
		t.Error("putTable wrote past the padded table")
	}
}

func TestNilInitrdHashesAsEmpty(t *testing.T) {
	boot, err := newBootHashes(nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}

	const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
	if got := hex.EncodeToString(boot.initrd[:]); got != emptySHA256 {
		t.Errorf("initrd hash = %s, want %s", got, emptySHA256)
	}
}
