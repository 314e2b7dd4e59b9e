package kbs

import (
	"bytes"
	"context"
	"testing"

	"cove.dev/cove/attest/simsnp"
)

// BenchmarkKBSRoundTrip measures one guest's full exchange against the
// broker on loopback HTTPS with a real Vault: a new client (new TLS
// connection), auth, attest with a fresh sim-snp report, and one resource
// that Vault Transit unwraps. Run it with
//
//	go test ./kbs -run '^$' -bench BenchmarkKBSRoundTrip -benchtime 200x
func BenchmarkKBSRoundTrip(b *testing.B) {
	br := startBroker(b, brokerOptions{})
	d := device(b, simsnp.LaunchParams{})
	ctx := context.Background()

	for b.Loop() {
		c := br.client()
		if err := c.Attest(ctx, evidenceFrom(d)); err != nil {
			b.Fatal(err)
		}
		got, err := c.Resource(ctx, br.resource)
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Equal(got, testDataKey) {
			b.Fatalf("data key = %x, want %x", got, testDataKey)
		}
		c.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
}
