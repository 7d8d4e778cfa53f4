// go-pusher pushes a small set of metrics to a Pushgateway-compatible
// endpoint (pushkit, or Prometheus' own Pushgateway) with the official Go
// client, github.com/prometheus/client_golang/prometheus/push. The Go client
// sends delimited protobuf (application/vnd.google.protobuf; ...; encoding=delimited).
//
// Build with Debian's packaged client library (golang-go and
// golang-github-prometheus-client-golang-dev), offline:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o /tmp/go-pusher samples/clients/go-pusher/main.go
//
// Run against an agent listening on 127.0.0.1:9529:
//
//	/tmp/go-pusher -url http://127.0.0.1:9529
//
// What it does, in order, all under job "go-batch" with the grouping labels
// instance="node-a" and path="/srv/batch" (the '/' makes the client send the
// value as "path@base64/L3Nydi9iYXRjaA", unpadded base64url):
//
//  1. PUT  (Push) a registry with a counter, a gauge vector, a summary and a
//     histogram (and, with -stamp-ms, a gauge carrying an explicit timestamp);
//  2. POST (Add)  a registry with one more gauge;
//  3. DELETE the group, unless -no-delete is given.
//
// With -text the pushes use the text format (Format(expfmt.FmtText))
// instead of the client's default, delimited protobuf.
//
// With -native it does something else: one PUT, under job "go-native",
// of a native histogram, a mixed classic-and-native histogram and a
// counter, all with exemplars, to each of the comma-separated URLs in
// -url in turn. Every URL gets the same metrics (exemplar timestamps
// included), so that two gateways' expositions can be compared.
//
// With -groups N it does something else too: N PUTs, under job "go-shard",
// each to its own group (instance="g<k>", k from -first on) with one gauge,
// go_sharded_value = k; as many jobs push through a sharding proxy.
//
// Every request's method and HTTP status are printed as "METHOD STATUS" on
// stdout. The program exits non-zero if a request fails or is answered with
// anything but 200 (PUT, POST) or 202 (DELETE).
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/push"
	"github.com/prometheus/common/expfmt"
)

// recordingClient passes requests to http.DefaultClient and checks and
// prints the status of each answer.
type recordingClient struct {
	failed bool
}

func (c *recordingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	fmt.Printf("%s %d\n", req.Method, resp.StatusCode)
	if ct := req.Header.Get("Content-Type"); ct != "" {
		fmt.Fprintf(os.Stderr, "%s Content-Type: %s\n", req.Method, ct)
	}
	want := http.StatusOK
	if req.Method == http.MethodDelete {
		want = http.StatusAccepted
	}
	if resp.StatusCode != want {
		fmt.Fprintf(os.Stderr, "%s %s: want status %d, got %d\n", req.Method, req.URL, want, resp.StatusCode)
		c.failed = true
	}
	return resp, nil
}

// stampedCollector exposes one gauge sample with an explicit timestamp.
type stampedCollector struct {
	desc *prometheus.Desc
	at   time.Time
}

func (s stampedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s stampedCollector) Collect(ch chan<- prometheus.Metric) {
	m := prometheus.MustNewConstMetric(s.desc, prometheus.GaugeValue, 42, "eu-1")
	ch <- prometheus.NewMetricWithTimestamp(s.at, m)
}

func main() {
	url := flag.String("url", "http://127.0.0.1:9529", "base URL of the Pushgateway API")
	noDelete := flag.Bool("no-delete", false, "leave the group in place")
	stampMs := flag.Int64("stamp-ms", 0, "if > 0, also push demo_stamped_value with this timestamp (ms since the epoch); Prometheus' Pushgateway rejects timestamps, pushkit honors them")
	text := flag.Bool("text", false, "push in the text format instead of delimited protobuf")
	native := flag.Bool("native", false, "push native histograms and exemplars to each URL in -url (comma-separated), and nothing else")
	groups := flag.Int("groups", 0, "if > 0, push this many groups of job go-shard, and nothing else")
	first := flag.Int("first", 0, "with -groups, the first group's number")
	flag.Parse()

	if *native {
		pushNative(strings.Split(*url, ","))
		return
	}
	if *groups > 0 {
		pushGroups(*url, *first, *groups)
		return
	}

	processed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demo_go_jobs_processed_total",
		Help: "Jobs processed by this batch run.",
	}, []string{"queue"})
	processed.WithLabelValues("high").Add(5)

	temperature := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "demo_go_temperature_celsius",
		Help: "A gauge with a label; the empty label value is dropped by pushkit.",
	}, []string{"room"})
	temperature.WithLabelValues("lab").Set(19.25)
	temperature.WithLabelValues("").Set(-4)

	latency := prometheus.NewSummary(prometheus.SummaryOpts{
		Name:       "demo_go_request_seconds",
		Help:       "A summary; one repeated observation keeps the quantiles exact.",
		Objectives: map[float64]float64{0.5: 0.05, 0.9: 0.01},
	})
	for i := 0; i < 3; i++ {
		latency.Observe(0.5)
	}

	size := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "demo_go_batch_size",
		Help:    "A histogram; the Go client leaves the +Inf bucket out of protobuf.",
		Buckets: []float64{0.5, 1, 10},
	})
	for _, v := range []float64{0.25, 0.5, 4, 64} {
		size.Observe(v)
	}

	stamped := stampedCollector{
		desc: prometheus.NewDesc("demo_stamped_value", "A gauge with an explicit timestamp.", []string{"region"}, nil),
		at:   time.UnixMilli(*stampMs),
	}

	client := &recordingClient{}
	group := func(p *push.Pusher) *push.Pusher {
		p = p.Client(client).Grouping("instance", "node-a").Grouping("path", "/srv/batch")
		if *text {
			p = p.Format(expfmt.FmtText)
		}
		return p
	}

	pusher := group(push.New(*url, "go-batch")).
		Collector(processed).Collector(temperature).Collector(latency).Collector(size)
	if *stampMs > 0 {
		pusher = pusher.Collector(stamped)
	}
	if err := pusher.Push(); err != nil {
		fmt.Fprintln(os.Stderr, "push:", err)
		os.Exit(1)
	}

	marker := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "demo_go_add_marker",
		Help: "Pushed with POST (Add).",
	})
	marker.Set(7)
	if err := group(push.New(*url, "go-batch")).Collector(marker).Add(); err != nil {
		fmt.Fprintln(os.Stderr, "add:", err)
		os.Exit(1)
	}

	if !*noDelete {
		if err := group(push.New(*url, "go-batch")).Delete(); err != nil {
			fmt.Fprintln(os.Stderr, "delete:", err)
			os.Exit(1)
		}
	}

	if client.failed {
		os.Exit(1)
	}
}

// pushNative pushes one registry of native histograms and exemplars to
// every URL in urls, under job "go-native".
func pushNative(urls []string) {
	wait := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "demo_native_wait_seconds",
		Help:                        "A native histogram with negative, zero and positive observations.",
		NativeHistogramBucketFactor: 1.1,
	})
	for _, v := range []float64{-2.5, 0, 0.001, 0.2, 0.21, 3, 1e6} {
		wait.Observe(v)
	}
	wait.(prometheus.ExemplarObserver).ObserveWithExemplar(0.3, prometheus.Labels{"trace_id": "0af7651916cd43dd"})

	mixed := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "demo_native_mixed_bytes",
		Help:                        "Classic buckets and native ones in one histogram.",
		Buckets:                     []float64{100, 1000},
		NativeHistogramBucketFactor: 2,
	})
	mixed.(prometheus.ExemplarObserver).ObserveWithExemplar(64, prometheus.Labels{"trace_id": "b7ad6b7169203331"})
	mixed.Observe(5000)

	empty := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:                        "demo_native_empty_seconds",
		Help:                        "A native histogram with no observation yet.",
		NativeHistogramBucketFactor: 1.5,
	})

	requests := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "demo_native_requests_total",
		Help: "A counter with an exemplar.",
	})
	requests.(prometheus.ExemplarAdder).AddWithExemplar(3, prometheus.Labels{"trace_id": "00f067aa0ba902b7", "span": "x"})

	client := &recordingClient{}
	for _, u := range urls {
		err := push.New(u, "go-native").Client(client).Grouping("instance", "node-n").
			Collector(wait).Collector(mixed).Collector(empty).Collector(requests).Push()
		if err != nil {
			fmt.Fprintln(os.Stderr, "push:", err)
			os.Exit(1)
		}
	}
	if client.failed {
		os.Exit(1)
	}
}

// pushGroups PUTs n groups of job "go-shard", g<first> to g<first+n-1>,
// each with go_sharded_value set to its number.
func pushGroups(url string, first, n int) {
	client := &recordingClient{}
	for k := first; k < first+n; k++ {
		value := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "go_sharded_value",
			Help: "A value per group.",
		})
		value.Set(float64(k))
		err := push.New(url, "go-shard").Client(client).Grouping("instance", fmt.Sprintf("g%d", k)).
			Collector(value).Push()
		if err != nil {
			fmt.Fprintln(os.Stderr, "push:", err)
			os.Exit(1)
		}
	}
	if client.failed {
		os.Exit(1)
	}
}
