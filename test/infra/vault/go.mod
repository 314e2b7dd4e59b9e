module cove.dev/test/vault

go 1.25

require github.com/hashicorp/vault v1.21.0
