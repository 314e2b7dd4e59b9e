// Package attest verifies AMD SEV-SNP evidence for Cove's broker in two
// separate steps, as go-sev-guest separates its verify and validate packages:
//
//   - [VerifySNP] decides whether the evidence is genuine: the report's
//     signature checks out with the VCEK or VLEK certificate in the evidence,
//     and that certificate chains to a trusted AMD root. It returns the
//     report's fields as [SNPClaims].
//   - [CheckSNP] decides whether genuine claims are acceptable: it compares
//     them with [ReferenceValues] (measurement, HOST_DATA, REPORT_DATA, guest
//     policy, TCB) and returns a [Verdict] that lists every failed rule.
//
// [ReportData] computes the REPORT_DATA that binds a KBS session's
// runtime-data to the report.
//
// # Roots
//
// Verification trusts AMD's ARK and ASK/ASVK certificates for Milan, Genoa
// and Turin, as embedded in go-sev-guest v0.15.0. Certificates are never
// fetched from AMD's Key Distribution Service, because the evidence carries
// the VCEK or VLEK certificate. So verification works offline and at any
// evaluation time ([VerifyOptions.Now]).
//
// The software SEV-SNP device of package cove.dev/cove/attest/simsnp signs
// with a test-only chain. That chain is trusted only when it is passed in
// [VerifyOptions.InsecureTestOnlyRoots], and claims verified through it have
// [SNPClaims.TestOnlyRoot] set.
//
// NOTE: go-sev-guest v0.15.0's verify package registers the flag
// -workaround_kds_productname on flag.CommandLine, so a program that imports
// attest must not define a flag with that name.
package attest
