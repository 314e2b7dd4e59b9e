package e2e

import (
	"testing"
	"time"
)

// BenchmarkRunToKeyRelease measures the time from cove run to the data
// key released inside the guest. It splits that into VM boot (start to the
// agent's first message) and attestation plus release (to the
// keys_released event). The job has 100 rows, so the workload adds little.
func BenchmarkRunToKeyRelease(b *testing.B) {
	img := buildImage(b)
	e := newEnv(b, envOptions{})
	e.sealClaims("claims", 100)
	plan := e.writeJob(img, nil)
	e.grant("claims", plan.MeasurementHex(), plan.DigestHex())
	var boot, release, total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, _, err := e.run(img, plan, nil)
		if err != nil {
			b.Fatal(err)
		}
		boot += res.Timings.Boot
		release += res.Timings.Release
		total += res.Timings.Total
	}
	b.ReportMetric(boot.Seconds()/float64(b.N), "boot-s/op")
	b.ReportMetric(release.Seconds()/float64(b.N), "attest+release-s/op")
	b.ReportMetric((boot+release).Seconds()/float64(b.N), "run-to-key-s/op")
	b.ReportMetric(total.Seconds()/float64(b.N), "whole-job-s/op")
}
