package drivercache

import "testing"

func TestSecretValuesAreTheSecretKeys(t *testing.T) {
	got := secretValues(map[string][]byte{
		"token": []byte("t0k3n-value"), "password": []byte("pa55word"), "apiKey": []byte("k3y-value"),
		"applicationCredentialSecret": []byte("acs-value"), "username": []byte("admin"), "projectName": []byte("Default"),
	})
	want := map[string]bool{"t0k3n-value": true, "pa55word": true, "k3y-value": true, "acs-value": true}
	if len(got) != len(want) {
		t.Fatalf("secretValues = %q, want %v", got, want)
	}
	for _, v := range got {
		if !want[string(v)] {
			t.Errorf("secretValues holds %q, which is no secret", v)
		}
	}
}
