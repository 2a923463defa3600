// Command sarama-compat drives a Kafka-compatible broker with Sarama 1.22 (the Go client
// Debian ships as golang-github-shopify-sarama-dev) and reports, as one JSON object on
// stdout, what worked: produce, a consumer group that commits through Sarama's offset
// manager, standalone offset-manager commits, and the ClusterAdmin calls tools build on.
//
// It is built offline in GOPATH mode against Debian's copy of Sarama (see
// scripts/compat-debian-tools.sh), so it must only use Sarama 1.22's API.
//
// Every step runs even when an earlier one failed, so one run shows every incompatibility;
// the exit status is 0 only if all steps passed. Every wait has a deadline, and a watchdog
// ends the program (printing what it has) if the whole run overruns -timeout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

// Step is the outcome of one step of the run.
type Step struct {
	OK     bool                   `json:"ok"`
	Errors []string               `json:"errors,omitempty"` // distinct messages, "(xN)" when repeated
	Info   map[string]interface{} `json:"info,omitempty"`
	msgs   []string               // distinct messages in order of first occurrence
	counts map[string]int
}

// Summary is the JSON printed at the end (or by the watchdog).
type Summary struct {
	Brokers      string           `json:"brokers"`
	KafkaVersion string           `json:"kafka_version"`
	Topic        string           `json:"topic"`
	Group        string           `json:"group"`
	Produced     int              `json:"produced"`
	Consumed     int              `json:"consumed"`
	Committed    map[int32]int64  `json:"committed_offsets"`
	HighWater    map[int32]int64  `json:"high_watermarks"`
	Steps        map[string]*Step `json:"steps"`
	Order        []string         `json:"step_order"`
	OK           bool             `json:"ok"`
	TimedOut     bool             `json:"timed_out,omitempty"`
}

var (
	mu      sync.Mutex // guards summary: the watchdog may print it while a step runs
	summary = &Summary{Steps: map[string]*Step{}, Committed: map[int32]int64{}, HighWater: map[int32]int64{}}
)

// step registers a step and returns it; record its result through fail/info.
func step(name string) *Step {
	mu.Lock()
	defer mu.Unlock()
	s := &Step{OK: true, Info: map[string]interface{}{}, counts: map[string]int{}}
	summary.Steps[name] = s
	summary.Order = append(summary.Order, name)
	log.Printf("step %s: start", name)
	return s
}

func (s *Step) fail(format string, args ...interface{}) {
	mu.Lock()
	defer mu.Unlock()
	s.OK = false
	msg := fmt.Sprintf(format, args...)
	if s.counts[msg] == 0 {
		s.msgs = append(s.msgs, msg)
	}
	s.counts[msg]++
	s.Errors = s.Errors[:0]
	for _, m := range s.msgs {
		if n := s.counts[m]; n > 1 {
			m = fmt.Sprintf("%s (x%d)", m, n)
		}
		s.Errors = append(s.Errors, m)
	}
	log.Printf("  error: %s", msg)
}

func (s *Step) set(key string, value interface{}) {
	mu.Lock()
	defer mu.Unlock()
	s.Info[key] = value
}

// printSummary writes the JSON summary; the caller holds no lock.
func printSummary() bool {
	mu.Lock()
	defer mu.Unlock()
	ok := len(summary.Steps) > 0 && !summary.TimedOut
	for _, s := range summary.Steps {
		ok = ok && s.OK
	}
	summary.OK = ok
	out, _ := json.MarshalIndent(summary, "", "  ")
	fmt.Println(string(out))
	return ok
}

var kafkaVersions = map[string]sarama.KafkaVersion{
	"0.10.2.0": sarama.V0_10_2_0, // the lowest Sarama's ConsumerGroup accepts
	"0.11.0.0": sarama.V0_11_0_0,
	"1.0.0":    sarama.V1_0_0_0,
	"2.0.0":    sarama.V2_0_0_0,
	"2.1.0":    sarama.V2_1_0_0,
	"2.2.0":    sarama.V2_2_0_0, // sarama.MaxVersion in 1.22
}

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "bootstrap brokers, comma separated")
	topic := flag.String("topic", "sarama-compat", "topic to create, produce to and consume")
	group := flag.String("group", "sarama-compat-group", "consumer group id (other groups get suffixes)")
	partitions := flag.Int("partitions", 3, "partitions of the created topic")
	n := flag.Int("n", 100, "keyed messages to produce and consume")
	version := flag.String("kafka-version", "2.2.0", "Config.Version: "+versionNames())
	stepTimeout := flag.Duration("step-timeout", 30*time.Second, "deadline for each waiting step")
	timeout := flag.Duration("timeout", 180*time.Second, "deadline for the whole run")
	verbose := flag.Bool("v", false, "send Sarama's own log to stderr")
	flag.Parse()

	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetOutput(os.Stderr)
	if *verbose {
		sarama.Logger = log.New(os.Stderr, "[sarama] ", log.Ltime|log.Lmicroseconds)
	}
	kv, ok := kafkaVersions[*version]
	if !ok {
		log.Fatalf("unknown -kafka-version %q (known: %s)", *version, versionNames())
	}
	summary.Brokers, summary.KafkaVersion, summary.Topic, summary.Group = *brokers, *version, *topic, *group

	// Watchdog: whatever hangs, the run ends by -timeout with the summary so far.
	go func() {
		time.Sleep(*timeout)
		mu.Lock()
		summary.TimedOut = true
		mu.Unlock()
		log.Printf("run exceeded -timeout %s", *timeout)
		printSummary()
		os.Exit(2)
	}()

	addrs := strings.Split(*brokers, ",")
	r := &run{addrs: addrs, kv: kv, topic: *topic, group: *group, partitions: int32(*partitions), n: *n, wait: *stepTimeout}
	r.apiVersions()
	r.createTopic()
	r.produce()
	r.partitionConsumer()
	r.consumerGroup()
	r.checkGroupCommitted()
	// Sarama's offset manager commits with OffsetCommit v1 unless Consumer.Offsets.Retention
	// is set, when it uses v2: run both so a broker that serves only one shows which.
	r.offsetManagerCommit("offset_manager_commit_v1", r.group+"-om-v1", 0)
	r.offsetManagerCommit("offset_manager_commit_v2", r.group+"-om-v2", 24*time.Hour)
	r.describeConfigs()
	r.listGroups()

	if !printSummary() {
		os.Exit(1)
	}
}

func versionNames() string {
	var names []string
	for k := range kafkaVersions {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

type run struct {
	addrs      []string
	kv         sarama.KafkaVersion
	topic      string
	group      string
	partitions int32
	n          int
	wait       time.Duration
}

// config is Sarama's default config with a modern Config.Version (the default, V0_8_2_0,
// speaks protocol versions that Kafka 4 no longer serves) and short network deadlines.
func (r *run) config() *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "nurt-sarama-compat"
	c.Version = r.kv
	c.Net.DialTimeout = 5 * time.Second
	c.Net.ReadTimeout = 10 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	c.Metadata.Retry.Max = 3
	c.Metadata.Retry.Backoff = 500 * time.Millisecond
	c.Consumer.Return.Errors = true // errors reach us instead of Sarama's (discarded) log
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.Retry.Max = 2
	return c
}

// withDeadline runs f and gives up waiting after d (f's goroutine may leak; the process is short-lived).
func withDeadline(d time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("no answer within %s", d)
	}
}

func (r *run) admin(s *Step) sarama.ClusterAdmin {
	var admin sarama.ClusterAdmin
	err := withDeadline(r.wait, func() (err error) {
		admin, err = sarama.NewClusterAdmin(r.addrs, r.config())
		return err
	})
	if err != nil {
		s.fail("NewClusterAdmin: %v", err)
		return nil
	}
	return admin
}

// apiVersions records what the broker advertises. Sarama 1.22 never sends ApiVersions on
// its own (it picks request versions from Config.Version alone); this probe is the
// harness's, on a connection of its own, so the report can set what Sarama sent against
// what the broker serves.
func (r *run) apiVersions() {
	s := step("api_versions_probe")
	b := sarama.NewBroker(r.addrs[0])
	if err := withDeadline(r.wait, func() error {
		if err := b.Open(r.config()); err != nil {
			return err
		}
		_, err := b.Connected() // waits for the connection Open started
		return err
	}); err != nil {
		s.fail("connect %s: %v", r.addrs[0], err)
		return
	}
	defer b.Close()
	var resp *sarama.ApiVersionsResponse
	if err := withDeadline(r.wait, func() (err error) {
		resp, err = b.ApiVersions(&sarama.ApiVersionsRequest{})
		return err
	}); err != nil {
		s.fail("ApiVersions v0: %v", err)
		return
	}
	if resp.Err != sarama.ErrNoError {
		s.fail("ApiVersions v0: %v", resp.Err)
	}
	advertised := map[int16]string{}
	for _, v := range resp.ApiVersions {
		advertised[v.ApiKey] = fmt.Sprintf("%d-%d", v.MinVersion, v.MaxVersion)
	}
	s.set("advertised", advertised)
}

// createTopic uses ClusterAdmin.CreateTopic (CreateTopics v2 at Version >= 1.0).
func (r *run) createTopic() {
	s := step("create_topic")
	admin := r.admin(s)
	if admin == nil {
		return
	}
	defer admin.Close()
	err := withDeadline(r.wait, func() error {
		return admin.CreateTopic(r.topic, &sarama.TopicDetail{NumPartitions: r.partitions, ReplicationFactor: 1}, false)
	})
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) && !strings.Contains(err.Error(), "already exists") {
		s.fail("CreateTopic: %v", err)
	}
	s.set("partitions", r.partitions)
}

// produce sends N keyed messages with a SyncProducer (Produce v3 at Version >= 0.11).
func (r *run) produce() {
	s := step("produce")
	c := r.config()
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Retry.Max = 3
	c.Producer.Timeout = 10 * time.Second
	var producer sarama.SyncProducer
	if err := withDeadline(r.wait, func() (err error) {
		producer, err = sarama.NewSyncProducer(r.addrs, c)
		return err
	}); err != nil {
		s.fail("NewSyncProducer: %v", err)
		return
	}
	defer producer.Close()
	msgs := make([]*sarama.ProducerMessage, r.n)
	for i := range msgs {
		msgs[i] = &sarama.ProducerMessage{
			Topic: r.topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("key-%d", i%10)),
			Value: sarama.StringEncoder(fmt.Sprintf("value-%d", i)),
		}
	}
	err := withDeadline(r.wait, func() error { return producer.SendMessages(msgs) })
	failed := map[*sarama.ProducerMessage]bool{}
	if err != nil {
		var perrs sarama.ProducerErrors
		if errors.As(err, &perrs) && len(perrs) > 0 {
			for _, pe := range perrs {
				failed[pe.Msg] = true
			}
			s.fail("SendMessages: %d of %d failed, first: %v", len(perrs), r.n, perrs[0].Err)
		} else {
			s.fail("SendMessages: %v", err)
			for _, m := range msgs { // a timeout or a closed producer: count none as sent
				failed[m] = true
			}
		}
	}
	perPartition := map[int32]int{}
	produced := 0
	for _, m := range msgs {
		if !failed[m] {
			perPartition[m.Partition]++
			produced++
		}
	}
	mu.Lock()
	summary.Produced = produced
	mu.Unlock()
	s.set("per_partition", perPartition)
}

// partitionConsumer reads every partition from the oldest offset with Sarama's plain
// Consumer (no group: ListOffsets v1 for the start, then Fetch v4), so fetching is
// checked even when the group protocol is refused.
func (r *run) partitionConsumer() {
	s := step("partition_consumer")
	var consumer sarama.Consumer
	if err := withDeadline(r.wait, func() (err error) {
		consumer, err = sarama.NewConsumer(r.addrs, r.config())
		return err
	}); err != nil {
		s.fail("NewConsumer: %v", err)
		return
	}
	defer consumer.Close()
	msgs := make(chan *sarama.ConsumerMessage, r.n)
	for p := int32(0); p < r.partitions; p++ {
		var pc sarama.PartitionConsumer
		if err := withDeadline(r.wait, func() (err error) {
			pc, err = consumer.ConsumePartition(r.topic, p, sarama.OffsetOldest)
			return err
		}); err != nil {
			s.fail("ConsumePartition(%d): %v", p, err)
			continue
		}
		defer pc.AsyncClose()
		go func(pc sarama.PartitionConsumer) {
			for m := range pc.Messages() {
				msgs <- m
			}
		}(pc)
		go func(p int32, pc sarama.PartitionConsumer) {
			for err := range pc.Errors() {
				s.fail("partition %d: %v", p, err.Err)
			}
		}(p, pc)
	}
	got, keyed := 0, 0
	deadline := time.After(r.wait)
wait:
	for got < r.n {
		select {
		case m := <-msgs:
			got++
			if strings.HasPrefix(string(m.Key), "key-") {
				keyed++
			}
		case <-deadline:
			break wait
		}
	}
	s.set("consumed", got)
	if got != r.n || keyed != got {
		s.fail("read %d of %d messages (%d with their key) within %s", got, r.n, keyed, r.wait)
	}
}

// handler counts each distinct message once and marks it for the offset manager to commit.
type handler struct {
	mu     sync.Mutex
	seen   map[string]bool
	want   int
	done   context.CancelFunc
	claims map[string][]int32
}

func (h *handler) Setup(sess sarama.ConsumerGroupSession) error {
	h.mu.Lock()
	h.claims = sess.Claims()
	h.mu.Unlock()
	return nil
}
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		sess.MarkMessage(msg, "")
		h.mu.Lock()
		h.seen[fmt.Sprintf("%d/%d", msg.Partition, msg.Offset)] = true
		if len(h.seen) >= h.want {
			h.done()
		}
		h.mu.Unlock()
	}
	return nil
}

// consumerGroup joins r.group with Sarama's ConsumerGroup (JoinGroup v1, SyncGroup v0,
// Heartbeat v0, OffsetFetch v1, Fetch v4, OffsetCommit v1, LeaveGroup v0) and consumes
// until all N messages arrived or the deadline passed; the session's release commits the
// marked offsets.
func (r *run) consumerGroup() {
	s := step("consumer_group")
	var cg sarama.ConsumerGroup
	if err := withDeadline(r.wait, func() (err error) {
		cg, err = sarama.NewConsumerGroup(r.addrs, r.group, r.config())
		return err
	}); err != nil {
		s.fail("NewConsumerGroup: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.wait)
	defer cancel()
	h := &handler{seen: map[string]bool{}, want: r.n, done: cancel}

	var errMu sync.Mutex
	asyncErrs := map[string]int{}
	go func() {
		for err := range cg.Errors() {
			errMu.Lock()
			asyncErrs[err.Error()]++
			errMu.Unlock()
		}
	}()

	// Consume returns at the end of each session (or when joining fails); call it again
	// until everything arrived or the deadline passed, but stop after three failed joins
	// in a row so a broker that refuses the group protocol fails fast.
	failures := 0
	for ctx.Err() == nil && failures < 3 {
		err := cg.Consume(ctx, []string{r.topic}, h)
		if err != nil {
			failures++
			s.fail("Consume (attempt %d): %v", failures, err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		} else {
			failures = 0
		}
	}
	if err := withDeadline(r.wait, cg.Close); err != nil {
		s.fail("Close: %v", err)
	}
	h.mu.Lock()
	consumed := len(h.seen)
	s.set("claims", h.claims)
	h.mu.Unlock()
	errMu.Lock()
	for e, count := range asyncErrs {
		s.fail("Errors(): %s (x%d)", e, count)
	}
	errMu.Unlock()
	mu.Lock()
	summary.Consumed = consumed
	mu.Unlock()
	if consumed < r.n {
		s.fail("consumed %d of %d messages", consumed, r.n)
	}
}

// highWatermarks asks each partition's log end offset (ListOffsets v1 at Version >= 0.10.1).
func (r *run) highWatermarks(s *Step) map[int32]int64 {
	var client sarama.Client
	if err := withDeadline(r.wait, func() (err error) {
		client, err = sarama.NewClient(r.addrs, r.config())
		return err
	}); err != nil {
		s.fail("NewClient: %v", err)
		return nil
	}
	defer client.Close()
	hw := map[int32]int64{}
	for p := int32(0); p < r.partitions; p++ {
		var off int64
		if err := withDeadline(r.wait, func() (err error) {
			off, err = client.GetOffset(r.topic, p, sarama.OffsetNewest)
			return err
		}); err != nil {
			s.fail("GetOffset(%d, newest): %v", p, err)
			continue
		}
		hw[p] = off
	}
	return hw
}

// committed reads group's committed offsets with ClusterAdmin.ListConsumerGroupOffsets
// (OffsetFetch v1); a partition without a commit reads -1.
func (r *run) committed(s *Step, group string) map[int32]int64 {
	admin := r.admin(s)
	if admin == nil {
		return nil
	}
	defer admin.Close()
	parts := make([]int32, r.partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	var resp *sarama.OffsetFetchResponse
	if err := withDeadline(r.wait, func() (err error) {
		resp, err = admin.ListConsumerGroupOffsets(group, map[string][]int32{r.topic: parts})
		return err
	}); err != nil {
		s.fail("ListConsumerGroupOffsets(%s): %v", group, err)
		return nil
	}
	out := map[int32]int64{}
	for _, p := range parts {
		b := resp.GetBlock(r.topic, p)
		switch {
		case b == nil:
			s.fail("OffsetFetch answer has no block for partition %d", p)
		case b.Err != sarama.ErrNoError:
			s.fail("OffsetFetch partition %d: %v", p, b.Err)
		default:
			out[p] = b.Offset
		}
	}
	return out
}

// checkGroupCommitted verifies that the consumer group's commits reached each partition's
// log end.
func (r *run) checkGroupCommitted() {
	s := step("group_committed_offsets")
	hw := r.highWatermarks(s)
	got := r.committed(s, r.group)
	mu.Lock()
	for p, o := range hw {
		summary.HighWater[p] = o
	}
	for p, o := range got {
		summary.Committed[p] = o
	}
	mu.Unlock()
	if hw == nil || got == nil {
		return
	}
	for p, end := range hw {
		if got[p] != end {
			s.fail("partition %d: committed %d, log end %d", p, got[p], end)
		}
	}
}

// offsetManagerCommit commits each partition's log end for group through a standalone
// offset manager (no group membership: member "" generation -1, as a "simple consumer"),
// then reads the commits back. retention 0 makes Sarama send OffsetCommit v1, anything
// else v2 (with retention_time).
func (r *run) offsetManagerCommit(name, group string, retention time.Duration) {
	s := step(name)
	c := r.config()
	c.Consumer.Offsets.Retention = retention
	version := 1
	if retention != 0 {
		version = 2
	}
	s.set("offset_commit_version", version)
	hw := r.highWatermarks(s)
	if hw == nil {
		return
	}
	var client sarama.Client
	if err := withDeadline(r.wait, func() (err error) {
		client, err = sarama.NewClient(r.addrs, c)
		return err
	}); err != nil {
		s.fail("NewClient: %v", err)
		return
	}
	defer client.Close()
	var om sarama.OffsetManager
	if err := withDeadline(r.wait, func() (err error) {
		om, err = sarama.NewOffsetManagerFromClient(group, client)
		return err
	}); err != nil {
		s.fail("NewOffsetManagerFromClient: %v", err)
		return
	}
	var wg sync.WaitGroup
	for p := int32(0); p < r.partitions; p++ {
		var pom sarama.PartitionOffsetManager
		// ManagePartition fetches the current commit first (OffsetFetch v1).
		if err := withDeadline(r.wait, func() (err error) {
			pom, err = om.ManagePartition(r.topic, p)
			return err
		}); err != nil {
			s.fail("ManagePartition(%d): %v", p, err)
			continue
		}
		wg.Add(1)
		go func(p int32) {
			defer wg.Done()
			for err := range pom.Errors() { // closed when the manager closes
				s.fail("partition %d: %v", p, err.Err)
			}
		}(p)
		pom.MarkOffset(hw[p], "sarama-compat")
		pom.AsyncClose()
	}
	// Close flushes the marked offsets (retrying Consumer.Offsets.Retry.Max times).
	if err := withDeadline(r.wait, om.Close); err != nil {
		s.fail("OffsetManager.Close: %v", err)
	}
	if err := withDeadline(r.wait, func() error { wg.Wait(); return nil }); err != nil {
		s.fail("partition error channels not closed: %v", err)
	}
	got := r.committed(s, group)
	s.set("committed", got)
	for p, end := range hw {
		if got != nil && got[p] != end {
			s.fail("partition %d: committed %d, wanted %d", p, got[p], end)
		}
	}
}

// describeConfigs uses ClusterAdmin.DescribeConfig on the topic; Sarama 1.22 always sends
// DescribeConfigs v0, whatever Config.Version says.
func (r *run) describeConfigs() {
	s := step("describe_configs")
	admin := r.admin(s)
	if admin == nil {
		return
	}
	defer admin.Close()
	var entries []sarama.ConfigEntry
	if err := withDeadline(r.wait, func() (err error) {
		entries, err = admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: r.topic})
		return err
	}); err != nil {
		s.fail("DescribeConfig(topic %s): %v", r.topic, err)
		return
	}
	sample := map[string]string{}
	for _, e := range entries {
		if e.Name == "cleanup.policy" || e.Name == "retention.ms" || e.Name == "segment.bytes" {
			sample[e.Name] = e.Value
		}
	}
	s.set("entries", len(entries))
	s.set("sample", sample)
	if len(entries) == 0 {
		s.fail("no config entries for topic %s", r.topic)
	}
	if sample["cleanup.policy"] == "" {
		s.fail("cleanup.policy missing from the topic's configs")
	}
}

// listGroups uses ClusterAdmin.ListConsumerGroups (ListGroups v0) and
// DescribeConsumerGroups (DescribeGroups v0), which monitoring tools built on Sarama call.
func (r *run) listGroups() {
	s := step("list_describe_groups")
	admin := r.admin(s)
	if admin == nil {
		return
	}
	defer admin.Close()
	var groups map[string]string
	if err := withDeadline(r.wait, func() (err error) {
		groups, err = admin.ListConsumerGroups()
		return err
	}); err != nil {
		s.fail("ListConsumerGroups: %v", err)
	} else if _, ok := groups[r.group]; !ok {
		s.fail("ListConsumerGroups does not list %s (got %v)", r.group, groups)
	}
	s.set("groups", groups)
	var descs []*sarama.GroupDescription
	if err := withDeadline(r.wait, func() (err error) {
		descs, err = admin.DescribeConsumerGroups([]string{r.group})
		return err
	}); err != nil {
		s.fail("DescribeConsumerGroups: %v", err)
		return
	}
	for _, d := range descs {
		if d.Err != sarama.ErrNoError {
			s.fail("DescribeConsumerGroups(%s): %v", d.GroupId, d.Err)
		}
		s.set("state", d.State)
	}
}
