package measurements

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Published vectors of sev-snp-measure (tests/test_guest.py) and virtee/sev
// for the 4 KiB fixture, measured as a firmware at GPA 0xFFFFF000 with
// EPYC-v4 vCPUs. "Empty" kernel and initrd are /dev/null: direct boot with
// the SHA-256 of empty input.
func TestSNPDigestFixtureVectors(t *testing.T) {
	empty := []byte{}
	tests := []struct {
		name     string
		kernel   []byte
		initrd   []byte
		cmdline  string
		vcpus    int
		features uint64
		want     string
	}{
		{
			name: "empty kernel with append features 0x1", kernel: empty, initrd: empty,
			cmdline: "console=ttyS0 loglevel=7", vcpus: 1, features: 0x1,
			want: "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa",
		},
		{
			name: "empty kernel with append features 0x21", kernel: empty, initrd: empty,
			cmdline: "console=ttyS0 loglevel=7", vcpus: 1, features: 0x21,
			want: "803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977",
		},
		{
			name:   "empty kernel 1 vCPU features 0x21",
			kernel: empty, initrd: empty, vcpus: 1, features: 0x21,
			want: "329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198",
		},
		{
			name:   "empty kernel 1 vCPU features 0x1",
			kernel: empty, initrd: empty, vcpus: 1, features: 0x1,
			want: "ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5",
		},
		{
			name:   "empty kernel 4 vCPUs features 0x21",
			kernel: empty, initrd: empty, vcpus: 4, features: 0x21,
			want: "4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942",
		},
		{
			name:   "empty kernel 4 vCPUs features 0x1",
			kernel: empty, initrd: empty, vcpus: 4, features: 0x1,
			want: "5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5",
		},
		{
			name: "no kernel features 0x21", vcpus: 1, features: 0x21,
			want: "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b",
		},
		{
			name: "no kernel features 0x1", vcpus: 1, features: 0x1,
			want: "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d",
		},
		{
			name: "no kernel default features", vcpus: 1, features: 0,
			want: "19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d",
		},
	}

	fw := readFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := SNPLaunch{
				Firmware:      fw,
				Kernel:        tt.kernel,
				Initrd:        tt.initrd,
				Cmdline:       tt.cmdline,
				VCPUs:         tt.vcpus,
				VCPUSignature: SignatureEPYC,
				GuestFeatures: tt.features,
			}
			got, err := l.Digest()
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got[:]) != tt.want {
				t.Errorf("Digest = %x, want %s", got, tt.want)
			}
		})
	}
}

func TestSNPDigestFilesMatchesFixtureVector(t *testing.T) {
	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel")
	initrd := filepath.Join(dir, "initrd")
	for _, p := range []string{kernel, initrd} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	cmdline := "console=ttyS0 loglevel=7"
	got, err := SNPLaunchDigestFiles(fixturePath, kernel, initrd, cmdline, 1, SignatureEPYC, 0x1)
	if err != nil {
		t.Fatal(err)
	}

	const want = "6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("SNPLaunchDigestFiles = %x, want %s", got, want)
	}
}

func TestSNPDigestFilesWithoutKernel(t *testing.T) {
	got, err := SNPLaunchDigestFiles(fixturePath, "", "", "", 1, SignatureEPYC, 0x21)
	if err != nil {
		t.Fatal(err)
	}

	const want = "e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"
	if hex.EncodeToString(got[:]) != want {
		t.Errorf("SNPLaunchDigestFiles = %x, want %s", got, want)
	}
}

func TestFirmwarePagesDigestSeeds(t *testing.T) {
	t.Run("fixture", func(t *testing.T) {
		got, err := firmwarePagesDigest(readFixture(t))
		if err != nil {
			t.Fatal(err)
		}

		const want = "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74"
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("seed = %x, want %s", got, want)
		}
	})

	t.Run("Debian OVMF.amdsev.fd", func(t *testing.T) {
		got, err := firmwarePagesDigest(readDebianOVMF(t))
		if err != nil {
			t.Fatal(err)
		}

		const want = "9d0dd8be18c86e3fe3bf0038ed75ebf5340bee69fd2632c8ff9409964575960ae1f7e84be387d2e3467bc3508d1e4806"
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("seed = %x, want %s", got, want)
		}
	})
}

// The Debian firmware has no published whole-launch vector, so this checks
// that the in-memory and file paths agree and that each input changes the
// digest.
func TestSNPDigestDebianOVMFDirectBoot(t *testing.T) {
	fw := readDebianOVMF(t)
	base := SNPLaunch{
		Firmware:      fw,
		Kernel:        []byte("fake-kernel"),
		Initrd:        []byte("fake-initrd"),
		Cmdline:       "console=ttyS0",
		VCPUs:         2,
		VCPUSignature: SignatureEPYCMilan,
	}
	want, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	kernel := filepath.Join(dir, "kernel.bin")
	initrd := filepath.Join(dir, "initrd.bin")
	firmware := filepath.Join(dir, "OVMF.amdsev.fd")
	for path, data := range map[string][]byte{kernel: base.Kernel, initrd: base.Initrd, firmware: fw} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fromFiles, err := SNPLaunchDigestFiles(firmware, kernel, initrd, base.Cmdline,
		2, SignatureEPYCMilan, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fromFiles != want {
		t.Errorf("SNPLaunchDigestFiles = %x, want %x as from Digest", fromFiles, want)
	}

	variants := map[string]func(*SNPLaunch){
		"kernel":    func(l *SNPLaunch) { l.Kernel = []byte("other-kernel") },
		"initrd":    func(l *SNPLaunch) { l.Initrd = nil },
		"cmdline":   func(l *SNPLaunch) { l.Cmdline = "console=ttyS1" },
		"no kernel": func(l *SNPLaunch) { l.Kernel, l.Initrd, l.Cmdline = nil, nil, "" },
		"vCPUs":     func(l *SNPLaunch) { l.VCPUs = 3 },
		"signature": func(l *SNPLaunch) { l.VCPUSignature = SignatureEPYCGenoa },
		"features":  func(l *SNPLaunch) { l.GuestFeatures = 0x21 },
		"VMSA GPA":  func(l *SNPLaunch) { l.VMSAGPA = 0xFFFFFFFFFF000 },
	}
	for name, change := range variants {
		l := base
		change(&l)
		got, err := l.Digest()
		if err != nil {
			t.Errorf("%s changed: %v", name, err)
			continue
		}
		if got == want {
			t.Errorf("%s changed but the digest stayed %x", name, got)
		}
	}
}

func TestSNPDigestErrors(t *testing.T) {
	fixture := readFixture(t)
	valid := SNPLaunch{Firmware: fixture, VCPUs: 1, VCPUSignature: SignatureEPYC}

	noKernelHashes := readFixture(t)
	setSectionType(t, noKernelHashes, sectionKernelHashes, sectionSecMem)

	noHashTable := readFixture(t)
	replaceFooterGUID(t, noHashTable, sevHashTableGUID)

	noResetBlock := readFixture(t)
	replaceFooterGUID(t, noResetBlock, sevESResetGUID)

	unknownType := readFixture(t)
	setSectionType(t, unknownType, sectionSVSMCAA, 0x7)

	tests := []struct {
		name    string
		change  func(*SNPLaunch)
		wantErr error  // checked with errors.Is when set
		wantMsg string // a part of the message
	}{
		{
			name:    "firmware without footer table",
			change:  func(l *SNPLaunch) { l.Firmware = make([]byte, 2*pageSize) },
			wantErr: ErrNoFooterTable,
		},
		{
			name: "kernel with firmware lacking kernel-hash item",
			change: func(l *SNPLaunch) {
				l.Firmware, l.Kernel = noKernelHashes, []byte("fake-kernel")
			},
			wantErr: ErrNoKernelHashes,
		},
		{
			name: "kernel with firmware lacking hash table entry",
			change: func(l *SNPLaunch) {
				l.Firmware, l.Kernel = noHashTable, []byte("fake-kernel")
			},
			wantErr: ErrNoKernelHashes,
		},
		{
			name:    "4 vCPUs with firmware lacking reset block",
			change:  func(l *SNPLaunch) { l.Firmware, l.VCPUs = noResetBlock, 4 },
			wantErr: ErrNoResetBlock,
		},
		{
			name:    "unknown metadata item type",
			change:  func(l *SNPLaunch) { l.Firmware = unknownType },
			wantMsg: "unknown type 0x7",
		},
		{
			name:    "zero vCPUs",
			change:  func(l *SNPLaunch) { l.VCPUs = 0 },
			wantMsg: "invalid vCPU count 0",
		},
		{
			name:    "negative vCPUs",
			change:  func(l *SNPLaunch) { l.VCPUs = -1 },
			wantMsg: "invalid vCPU count -1",
		},
		{
			name:    "too many vCPUs",
			change:  func(l *SNPLaunch) { l.VCPUs = 4097 },
			wantMsg: "invalid vCPU count 4097",
		},
		{
			name:    "zero signature",
			change:  func(l *SNPLaunch) { l.VCPUSignature = 0 },
			wantMsg: "vCPU signature is zero",
		},
		{
			name:    "features without SNPActive",
			change:  func(l *SNPLaunch) { l.GuestFeatures = 0x20 },
			wantMsg: "SNPActive",
		},
		{
			name:    "unaligned VMSA GPA",
			change:  func(l *SNPLaunch) { l.VMSAGPA = 0xFFFFFFFFF800 },
			wantMsg: "not 4 KiB aligned",
		},
		{
			name:    "empty firmware",
			change:  func(l *SNPLaunch) { l.Firmware = nil },
			wantMsg: "firmware image is empty",
		},
		{
			name:    "firmware size not page multiple",
			change:  func(l *SNPLaunch) { l.Firmware = append([]byte{0}, fixture...) },
			wantMsg: "not a multiple of 4 KiB",
		},
		{
			name:    "initrd without kernel",
			change:  func(l *SNPLaunch) { l.Initrd = []byte{} },
			wantMsg: "initrd given without a kernel",
		},
		{
			name:    "cmdline without kernel",
			change:  func(l *SNPLaunch) { l.Cmdline = "quiet" },
			wantMsg: "command line given without a kernel",
		},
		{
			name:    "cmdline with NUL",
			change:  func(l *SNPLaunch) { l.Kernel, l.Cmdline = []byte{}, "quiet\x00" },
			wantMsg: "NUL byte",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := valid
			tt.change(&l)
			_, err := l.Digest()
			if err == nil {
				t.Fatal("Digest returned no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Digest error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Digest error = %q, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

// Firmware that cannot take kernel hashes still measures a launch without a
// kernel: the missing entry and item only matter for direct boot.
func TestSNPDigestWithoutKernelNeedsNoHashTable(t *testing.T) {
	noHashTable := readFixture(t)
	replaceFooterGUID(t, noHashTable, sevHashTableGUID)

	noKernelHashes := readFixture(t)
	setSectionType(t, noKernelHashes, sectionKernelHashes, sectionSecMem)

	firmwares := map[string][]byte{
		"no hash table entry": noHashTable,
		"no kernel-hash item": noKernelHashes,
	}
	for name, fw := range firmwares {
		l := SNPLaunch{Firmware: fw, VCPUs: 1, VCPUSignature: SignatureEPYC}
		if _, err := l.Digest(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSNPDigestFilesErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct {
		name                     string
		firmware, kernel, initrd string
		cmdline                  string
		wantMsg                  string
	}{
		{"missing firmware", missing, "", "", "", "read firmware"},
		{"missing kernel", fixturePath, missing, "", "", "hash kernel"},
		{"missing initrd", fixturePath, fixturePath, missing, "", "hash initrd"},
		{"initrd without kernel", fixturePath, "", fixturePath, "", "initrd given without a kernel"},
		{"cmdline without kernel", fixturePath, "", "", "quiet", "command line given without a kernel"},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SNPLaunchDigestFiles(tt.firmware, tt.kernel, tt.initrd, tt.cmdline,
				1, SignatureEPYC, 0)
			if err == nil || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("SNPLaunchDigestFiles error = %v, want it to contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestSNPDigestAllocations(t *testing.T) {
	l := SNPLaunch{Firmware: readFixture(t), Kernel: []byte{}, VCPUs: 4, VCPUSignature: SignatureEPYC}
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := l.Digest(); err != nil {
			t.Fatal(err)
		}
	})

	// The layout, its footer entries and the measurer: a handful, whatever
	// the number of pages.
	if allocs > 10 {
		t.Errorf("Digest made %v allocations, want at most 10", allocs)
	}
}

func BenchmarkSNPLaunchDigestOVMF(b *testing.B) {
	l := SNPLaunch{
		Firmware:      readDebianOVMF(b),
		Kernel:        make([]byte, 8<<20),
		Cmdline:       "console=ttyS0",
		VCPUs:         4,
		VCPUSignature: SignatureEPYCMilan,
	}
	b.SetBytes(int64(len(l.Firmware) + len(l.Kernel)))
	b.ReportAllocs()

	for b.Loop() {
		if _, err := l.Digest(); err != nil {
			b.Fatal(err)
		}
	}
}
