package measurements

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// mustHex decodes a hex test vector.
func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("invalid hex %q: %v", s, err)
	}
	return b
}

// countingPage returns a page whose byte i is i mod 256.
func countingPage() []byte {
	page := make([]byte, pageSize)
	for i := range page {
		page[i] = byte(i)
	}
	return page
}

// Each vector starts from the zero digest of SNP_LAUNCH_START. The expected
// values were computed independently from the PAGE_INFO definition.
func TestPageInfoChainVectors(t *testing.T) {
	tests := []struct {
		name string
		run  func(*launchDigest)
		want string
	}{
		{
			name: "A zero page at 0x800000",
			run:  func(d *launchDigest) { d.addEmptyPages(pageZero, 0x800000, pageSize) },
			want: "4472405c6dbc65e5629805f2be1b3df74eb119841eff12466c24f43e67083c23df5e645b2742b6d9aa0f943e095cebaa",
		},
		{
			name: "B normal page of zeros at 0",
			run:  func(d *launchDigest) { d.addNormalPages(0, make([]byte, pageSize)) },
			want: "9d13634b6014bb21cf059b2dc694e7bff01a8a7137041100cd2b695f3d10fb687267b97808b27f8f471d943bc6f53a20",
		},
		{
			name: "C normal counting page at 0x1000",
			run:  func(d *launchDigest) { d.addNormalPages(0x1000, countingPage()) },
			want: "d9ee416942ec5db1caf25b01cff7feaed0d7ac42422f811c6164e4857e3f800d270202f572ade105c96b3959107b8521",
		},
		{
			name: "D secrets then CPUID page",
			run: func(d *launchDigest) {
				d.addEmptyPages(pageSecrets, 0x80D000, pageSize)
				d.addEmptyPages(pageCPUID, 0x80E000, pageSize)
			},
			want: "064437dca682d8e07f90f072239b2ede35643f69eb57bbfbe4c473b578a6d21fff2e3c5d73c5ec8045cd13590ed7872e",
		},
		{
			name: "E unmeasured page at 0",
			run:  func(d *launchDigest) { d.addEmptyPages(pageUnmeasured, 0, pageSize) },
			want: "ed501ced343b88df8d4f114dc336e76fa53d3ad6ef71dab22a38755569189d2844af45f162ec25b45beefc8ea308cba7",
		},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d launchDigest
			tt.run(&d)
			if got := hex.EncodeToString(d.digest[:]); got != tt.want {
				t.Errorf("digest = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestPageInfoBytesOfZeroPage(t *testing.T) {
	var d launchDigest
	var zero [DigestSize]byte
	d.fillPageInfo(pageZero, 0x800000, &zero)

	want := append(make([]byte, 96), mustHex(t, "70000300000000000000800000000000")...)
	if !bytes.Equal(d.pageInfo[:], want) {
		t.Errorf("PAGE_INFO = %x, want %x", d.pageInfo[:], want)
	}
}

func TestPageInfoChainDependsOnOrder(t *testing.T) {
	var forward, backward launchDigest
	forward.addEmptyPages(pageSecrets, 0x80D000, pageSize)
	forward.addEmptyPages(pageCPUID, 0x80E000, pageSize)
	backward.addEmptyPages(pageCPUID, 0x80E000, pageSize)
	backward.addEmptyPages(pageSecrets, 0x80D000, pageSize)

	if forward.digest == backward.digest {
		t.Errorf("digest %x is the same for both page orders", forward.digest)
	}
}

func TestAddEmptyPagesCoversEveryPage(t *testing.T) {
	var whole, onePerCall launchDigest
	whole.addEmptyPages(pageZero, 0x800000, 3*pageSize)
	for gpa := uint64(0x800000); gpa < 0x803000; gpa += pageSize {
		onePerCall.addEmptyPages(pageZero, gpa, pageSize)
	}

	if whole.digest != onePerCall.digest {
		t.Errorf("3-page range digest %x, want %x (three single pages)", whole.digest, onePerCall.digest)
	}
}
