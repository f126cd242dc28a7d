// Batch inputs and grading: BrowseComp decryption against a CSV encrypted by Python's hashlib and
// base64 (tests/golden/make_batch_golden.py), CSV quoting, JSONL inputs, judge parsing (including
// the whole-match case the published simple-evals code gets wrong), calibration error against
// the Python port of HLE's calib_err, and the resumable results file.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "cli/batch/batch_runner.hpp"
#include "cli/batch/dataset.hpp"
#include "cli/batch/grading.hpp"
#include "cli/batch/results_store.hpp"
#include "cli/batch/sha256.hpp"
#include "engine/api/types.hpp"
#include "tests/test_support.hpp"

using namespace dsa;
using namespace dsa::test;


TEST_CASE("sha256: FIPS 180-4 examples") {
  auto hex = [](const std::array<uint8_t, 32>& d) {
    std::string s;
    char buf[3];
    for (uint8_t b : d) {
      std::snprintf(buf, sizeof buf, "%02x", b);
      s += buf;
    }
    return s;
  };
  CHECK(hex(sha256("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(hex(sha256("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("base64 round trip and errors") {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
    auto d = base64_decode(base64_encode(s));
    REQUIRE(d.ok());
    CHECK(*d == s);
  }
  CHECK(base64_encode("abc") == "YWJj");
  CHECK(base64_encode("ab") == "YWI=");
  CHECK(!base64_decode("YW!j").ok());
}

TEST_CASE("BrowseComp CSV encrypted by the Python reference decrypts to the expected rows") {
  auto tasks = load_batch_tasks(std::string(DSA_FIXTURES_DIR) + "/batch/sample.csv");
  REQUIRE_MESSAGE(tasks.ok(), tasks.error().message);
  auto expected = json::parse(read_text(std::string(DSA_FIXTURES_DIR) + "/batch/sample_expected.json"));
  REQUIRE(tasks->size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK((*tasks)[i].id == expected[i]["id"].get<std::string>());
    CHECK((*tasks)[i].question == expected[i]["question"].get<std::string>());
    REQUIRE((*tasks)[i].answer.has_value());
    CHECK(*(*tasks)[i].answer == expected[i]["answer"].get<std::string>());
    CHECK((*tasks)[i].topic == expected[i]["topic"].get<std::string>());
  }
  // And our encryption is the same scheme.
  CHECK(browsecomp_encrypt("Port Almund", "pw") != "Port Almund");
  CHECK(*browsecomp_decrypt(browsecomp_encrypt("Café Lümen", "pw"), "pw") == "Café Lümen");
}

TEST_CASE("CSV quoting, JSONL inputs and bad input") {
  auto rows = parse_csv("a,b\n\"x, \"\"y\"\"\",\"multi\nline\"\r\nplain,\n", "t.csv");
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 3);
  CHECK((*rows)[1][0] == "x, \"y\"");
  CHECK((*rows)[1][1] == "multi\nline");
  CHECK((*rows)[2][1] == "");
  CHECK(!parse_csv("a\n\"open", "t.csv").ok());

  TempDir dir("dsa-batch");
  const std::string canary = "c";
  write_text(dir / "q.jsonl", "{\"id\":\"a\",\"question\":\"Q1\",\"answer\":\"A1\"}\n\n"
                              "{\"query_id\":7,\"query\":\"Q2\"}\n"
                              "{\"id\":\"e\",\"question\":\"" + browsecomp_encrypt("secret Q", canary) +
                                  "\",\"answer\":\"" + browsecomp_encrypt("secret A", canary) + "\",\"canary\":\"c\"}\n");
  auto t = load_batch_tasks(dir / "q.jsonl");
  REQUIRE_MESSAGE(t.ok(), t.error().message);
  REQUIRE(t->size() == 3);
  CHECK((*t)[1].id == "7");
  CHECK(!(*t)[1].answer.has_value());
  CHECK((*t)[2].question == "secret Q");
  CHECK(*(*t)[2].answer == "secret A");

  write_text(dir / "dup.jsonl", "{\"id\":\"a\",\"question\":\"x\"}\n{\"id\":\"a\",\"question\":\"y\"}\n");
  auto dup = load_batch_tasks(dir / "dup.jsonl");
  REQUIRE(!dup.ok());
  CHECK(dup.error().message.find("duplicate task id 'a'") != std::string::npos);
  write_text(dir / "bad.jsonl", "{\"id\":\"a\",\"question\":\"x\"}\n{oops\n");
  auto bad = load_batch_tasks(dir / "bad.jsonl");
  REQUIRE(!bad.ok());
  CHECK(bad.error().message.find("bad.jsonl:2:") != std::string::npos);
}

TEST_CASE("judge output: the captured group decides, confidence parsed and clamped") {
  auto v = parse_judge_output(
      "extracted_final_answer: Port Almund\n\nreasoning: matches.\n\ncorrect: yes\n\nconfidence: 85%\n");
  CHECK(v.found);
  CHECK(v.correct);  // simple-evals compares "correct: yes" (the whole match) with "yes" and says no
  CHECK(v.confidence == 85.0);
  CHECK(v.extracted_answer == "Port Almund");
  auto n = parse_judge_output("**correct:** no\n**confidence:** 250%");
  CHECK(n.found);
  CHECK(!n.correct);
  CHECK(n.confidence == 100.0);
  auto none = parse_judge_output("I cannot judge this.");
  CHECK(!none.found);
  CHECK(!none.correct);
  CHECK(none.confidence == 100.0);

  const std::string resp = "Explanation: found it [d3].\n**Exact Answer:** 1911\nConfidence: 70%\n";
  CHECK(extract_exact_answer(resp) == std::optional<std::string>("1911"));
  CHECK(extract_confidence(resp) == std::optional<double>(70.0));
  CHECK(!extract_exact_answer("no format").has_value());
}

TEST_CASE("calibration error equals the Python port of HLE's calib_err") {
  auto cases = json::parse(read_text(std::string(DSA_FIXTURES_DIR) + "/batch/calibration.json"));
  REQUIRE(cases.size() == 4);
  for (const auto& c : cases) {
    std::vector<double> conf = c["confidence"].get<std::vector<double>>();
    std::vector<bool> correct;
    for (const auto& b : c["correct"]) correct.push_back(b.get<bool>());
    CHECK(calibration_error(conf, correct) == doctest::Approx(c["calibration_error"].get<double>()).epsilon(1e-9));
  }
  // Hand-computed: 200 answers, bins of 100; only the first bin counts: all 0% confident, half
  // correct -> sqrt(100/200 * 0.5^2) = 0.35355 -> 35.355%.
  std::vector<double> conf(200, 0.0);
  std::vector<bool> correct(200, false);
  for (int i = 100; i < 200; ++i) conf[static_cast<size_t>(i)] = 100.0;
  for (int i = 0; i < 50; ++i) correct[static_cast<size_t>(i)] = true;
  CHECK(calibration_error(conf, correct) == doctest::Approx(35.3553).epsilon(1e-4));
}

TEST_CASE("results file: append, resume, torn last line, an id's last record counts, errors run again") {
  TempDir dir("dsa-results");
  const auto file = dir / "out" / "results.jsonl";
  {
    auto s = ResultsStore::open(file);
    REQUIRE_MESSAGE(s.ok(), s.error().message);
    REQUIRE((*s)->append(json{{"id", "a"}, {"status", "error"}}).ok());
    REQUIRE((*s)->append(json{{"id", "b"}, {"correct", false}}).ok());
    CHECK(!(*s)->finished("a"));  // an error does not finish its task
    REQUIRE((*s)->append(json{{"id", "a"}, {"correct", true}}).ok());
    CHECK((*s)->finished("a"));
  }
  // A kill in the middle of a write leaves a torn line.
  write_text(file, read_text(file) + "{\"id\":\"c\",\"corr");
  auto s = ResultsStore::open(file);
  REQUIRE(s.ok());
  CHECK((*s)->torn_lines_dropped() == 1);
  CHECK((*s)->finished("a"));
  CHECK((*s)->finished("b"));
  CHECK(!(*s)->finished("c"));
  REQUIRE((*s)->append(json{{"id", "c"}, {"correct", true}}).ok());
  const auto records = (*s)->records();
  REQUIRE(records.size() == 3);  // one per id, in the order the ids came
  CHECK(records[0] == json{{"id", "a"}, {"correct", true}});
  CHECK(records[1] == json{{"id", "b"}, {"correct", false}});
  CHECK((*s)->record("a") == records[0]);
  CHECK(!(*s)->record("d"));
  CHECK(read_text(file) ==
        "{\"id\":\"a\",\"status\":\"error\"}\n{\"correct\":false,\"id\":\"b\"}\n{\"correct\":true,\"id\":\"a\"}\n"
        "{\"correct\":true,\"id\":\"c\"}\n");
}

TEST_CASE("results file: a second writer is refused while the first holds it") {
  TempDir dir("dsa-results-lock");
  const auto file = dir / "results.jsonl";
  auto first = ResultsStore::open(file);
  REQUIRE(first.ok());
  auto second = ResultsStore::open(file);
  REQUIRE_FALSE(second.ok());
  CHECK(second.error().message ==
        file.string() + ": another batch run is writing it (wait for it to end, or use another --out)");
  first->reset();
  CHECK(ResultsStore::open(file).ok());
}

TEST_CASE("task file names: an id that is a file name is kept, two ids never share a file") {
  CHECK(cli::task_file_name("q-17_a.b") == "q-17_a.b");
  const std::string slash = cli::task_file_name("a/b"), underscore = cli::task_file_name("a_b");
  CHECK(underscore == "a_b");
  CHECK(slash.starts_with("a_b-"));
  CHECK(slash.size() == 3 + 9);
  CHECK(slash != underscore);
  CHECK(cli::task_file_name("a\\b") != slash);
  CHECK(cli::task_file_name("").starts_with("task-"));
  CHECK(cli::task_file_name("..").starts_with("..-"));
}
