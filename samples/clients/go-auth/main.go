// go-auth pushes one gauge over HTTPS with basic auth, as a locked-down
// pushkit (TLS and [http_api.auth]) expects, with the official Go client:
// push.New(...).BasicAuth(...), and an http.Client that trusts the CA.
//
// Build offline with Debian's packaged client library:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/go-auth samples/clients/go-auth/main.go
//
// Run:
//
//	/tmp/go-auth -url https://127.0.0.1:9529 -ca ca.crt -user alice -password "$PW"
//
// It prints "PUT <status>" and exits non-zero unless the push got 200.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
)

func main() {
	url := flag.String("url", "https://127.0.0.1:9529", "pushkit's base URL")
	caFile := flag.String("ca", "", "PEM file of the CA that signed pushkit's certificate")
	user := flag.String("user", "", "basic-auth user")
	password := flag.String("password", "", "basic-auth password")
	flag.Parse()

	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fmt.Fprintln(os.Stderr, "no certificate in", *caFile)
		os.Exit(1)
	}
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}

	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "go_auth_pushed", Help: "Pushed over TLS with basic auth."})
	g.Set(11)
	err = push.New(*url, "go-auth").
		Collector(g).
		BasicAuth(*user, *password).
		Client(client).
		Push()
	if err != nil {
		fmt.Println("PUT failed")
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("PUT 200")
}
