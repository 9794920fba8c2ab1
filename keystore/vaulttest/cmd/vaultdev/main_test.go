package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out, w := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"-addr", "127.0.0.1:0"}, w, io.Discard)
		w.Close()
	}()
	vars := map[string]string{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && !strings.HasPrefix(sc.Text(), "#") {
		k, v, _ := strings.Cut(sc.Text(), "=")
		vars[k] = v
	}
	go io.Copy(io.Discard, out)
	if vars["VAULT_ADDR"] == "" || !strings.HasPrefix(vars["VAULT_TOKEN"], "hvs.") {
		t.Fatalf("output %v", vars)
	}
	req, _ := http.NewRequest(http.MethodGet, vars["VAULT_ADDR"]+"/v1/secret/config", nil)
	req.Header.Set("X-Vault-Token", vars["VAULT_TOKEN"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET secret/config: %s", resp.Status)
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit code %d", c)
	}
}
