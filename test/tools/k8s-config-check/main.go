// k8s-config-check loads the API server's configuration files the way kube-apiserver does,
// with its own loaders at the pinned release (k8s.io/apiserver, the staging module of
// k8s.io/kubernetes): an EncryptionConfiguration (--encryption-provider-config) and an audit
// Policy (--audit-policy-file). The audit loader falls back to lenient decoding with only a
// warning when a field is unknown, so the policy is also decoded strictly here: a misspelt
// field is an error, not a rule silently ignored. Secrets are never printed.
//
// usage: k8s-config-check ENCRYPTION_CONFIG AUDIT_POLICY
package main

import (
	"context"
	"fmt"
	"os"
	"sort"

	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit/policy"
	"k8s.io/apiserver/pkg/server/options/encryptionconfig"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: k8s-config-check ENCRYPTION_CONFIG AUDIT_POLICY")
		os.Exit(2)
	}
	enc, err := encryptionconfig.LoadEncryptionConfig(context.Background(), os.Args[1], false, "k8s-config-check")
	if err != nil {
		fail("encryption config: %v", err)
	}
	var encrypted []string
	for resource := range enc.Transformers {
		encrypted = append(encrypted, resource.String())
	}
	sort.Strings(encrypted)
	for _, r := range encrypted {
		fmt.Printf("encrypted: %s\n", r)
	}

	p, err := policy.LoadPolicyFromFile(os.Args[2])
	if err != nil {
		fail("audit policy: %v", err)
	}
	data, err := os.ReadFile(os.Args[2])
	if err != nil {
		fail("audit policy: %v", err)
	}
	if err := yaml.UnmarshalStrict(data, &auditv1.Policy{}); err != nil {
		fail("audit policy (strict): %v", err)
	}
	for _, r := range p.Rules {
		fmt.Printf("audit rule: %s\n", r.Level)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}
