// Strict template rendering and the embedded / --prompts-dir template set.
#include <doctest/doctest.h>

#include <set>

#include "prompts/render.hpp"
#include "tests/test_support.hpp"

using dsa::prompts::PromptSet;
using dsa::prompts::render_template;
using dsa::prompts::Vars;

// Constructed during static initialisation: the embedded table must already be there (it is
// constant-initialised), whatever the order in which translation units are initialised.
static const PromptSet kStaticSet;

TEST_CASE("the embedded templates are available during static initialisation") {
  CHECK(kStaticSet.text("summary"));
  CHECK(kStaticSet.text("grader"));
}

TEST_CASE("variables are replaced, values are not expanded again") {
  std::string err;
  auto out = render_template("t", "a {{x}} b {{y}}{{x}}", Vars{{"x", "1"}, {"y", "{{x}}"}}, &err);
  REQUIRE(out);
  CHECK(*out == "a 1 b {{x}}1");
}

TEST_CASE("{{{{ is a literal {{ and single braces pass through") {
  std::string err;
  auto out = render_template("t", "{{{{x}} {a} }}", Vars{}, &err);
  REQUIRE(out);
  CHECK(*out == "{{x}} {a} }}");
}

TEST_CASE("an unknown variable is an error naming the template and the variable") {
  std::string err;
  CHECK_FALSE(render_template("system_coding", "dir: {{workdir}}", Vars{{"work_dir", "/x"}}, &err));
  CHECK(err.find("system_coding") != std::string::npos);
  CHECK(err.find("'workdir'") != std::string::npos);
}

TEST_CASE("malformed variables are errors") {
  std::string err;
  CHECK_FALSE(render_template("t", "a {{x", Vars{{"x", "1"}}, &err));
  CHECK(err.find("'t'") != std::string::npos);
  CHECK_FALSE(render_template("t", "a {{ x }}", Vars{{"x", "1"}}, &err));
  CHECK_FALSE(render_template("t", "a {{}}", Vars{}, &err));
  CHECK_FALSE(render_template("t", "{{", Vars{}, &err));
}

// The variables each embedded template is rendered with by the runner.
static const std::vector<std::pair<std::string, Vars>> kTemplates = {
    {"system_coding", {{"tools", "shell"}, {"work_dir", "/w"}, {"approval_mode", "auto"}}},
    {"system_search", {}},
    {"summary", {}},
    {"summary_resume", {{"summary", "S"}}},
    {"history_dropped", {{"rounds_dropped", "3"}}},
    {"format_error", {{"error", "E"}}},
    {"browsecomp_query", {{"question", "Q"}}},
    {"grader", {{"question", "Q"}, {"response", "R"}, {"correct_answer", "A"}}},
};

TEST_CASE("every embedded template renders with its variables and uses each of them") {
  PromptSet set;
  for (const auto& [name, vars] : kTemplates) {
    CAPTURE(name);
    std::string err;
    auto out = set.render(name, vars, &err);
    REQUIRE_MESSAGE(out, err);
    CHECK(set.origin(name) == "embedded");
    CHECK(!out->empty());
    CHECK(out->back() != '\n');  // the file's final newline is not part of the prompt
    for (const auto& [var, value] : vars) {
      // Rendering with the variable missing fails, so the template really uses it.
      Vars fewer = vars;
      fewer.erase(var);
      CHECK_FALSE(set.render(name, fewer, &err));
    }
  }
}

TEST_CASE("the BrowseComp query and grader carry the published structure") {
  PromptSet set;
  std::string err;
  auto q = set.render("browsecomp_query", {{"question", "Who?"}}, &err);
  REQUIRE(q);
  CHECK(q->rfind("Who?", 0) == 0);
  CHECK(q->find("Explanation: {your explanation for your final answer}\nExact Answer: {your succinct, final answer}\n"
                "Confidence: {your confidence score between 0% and 100% for your answer}") != std::string::npos);
  auto g = set.render("grader", {{"question", "Q1"}, {"response", "R1"}, {"correct_answer", "A1"}}, &err);
  REQUIRE(g);
  for (const char* field : {"extracted_final_answer:", "reasoning:", "correct:", "confidence:", "Q1", "R1", "A1"})
    CHECK(g->find(field) != std::string::npos);
}

TEST_CASE("a prompts directory overrides templates by file name") {
  dsa::test::TempDir dir("prompts");
  dsa::test::write_text(dir / "summary_resume.txt", "Earlier: {{summary}}.\n");
  std::string err;
  auto set = PromptSet::with_overrides(dir.path(), &err);
  REQUIRE_MESSAGE(set, err);
  CHECK(set->origin("summary_resume") == (dir / "summary_resume.txt").string());
  auto out = set->render("summary_resume", {{"summary", "it"}}, &err);
  REQUIRE(out);
  CHECK(*out == "Earlier: it.");
  CHECK(set->origin("grader") == "embedded");  // the others stay embedded
  CHECK_FALSE(set->render("summary_resume", {}, &err));
  CHECK(err.find("'summary'") != std::string::npos);
}

TEST_CASE("an override is checked when the directory is read: its variables, an empty file, a directory") {
  struct Case {
    const char* file;
    const char* text;  // nullptr: a directory
    const char* expect;
  };
  for (const Case& c :
       {Case{"summary.txt", "Summarise {{what}}.", "unknown variable 'what'"},
        Case{"summary_resume.txt", "{{summary", "unclosed or malformed variable"},
        Case{"summary.txt", " \n", "is empty"}, Case{"summary.txt", nullptr, "is not a regular file"}}) {
    CAPTURE(c.file);
    dsa::test::TempDir dir("prompts");
    if (c.text)
      dsa::test::write_text(dir / c.file, c.text);
    else
      std::filesystem::create_directory(dir / c.file);
    std::string err;
    CHECK_FALSE(PromptSet::with_overrides(dir.path(), &err));
    CHECK_MESSAGE(err.find(c.expect) != std::string::npos, err);
    CHECK(err.find(c.file) != std::string::npos);
  }
}

TEST_CASE("a misspelt override file or a missing directory is an error") {
  dsa::test::TempDir dir("prompts");
  dsa::test::write_text(dir / "sumary.txt", "x");
  std::string err;
  CHECK_FALSE(PromptSet::with_overrides(dir.path(), &err));
  CHECK(err.find("sumary.txt") != std::string::npos);
  CHECK_FALSE(PromptSet::with_overrides(dir / "nope", &err));
  CHECK(err.find("nope") != std::string::npos);
  PromptSet set;
  CHECK_FALSE(set.render("no_such_template", {}, &err));
  CHECK(err.find("no_such_template") != std::string::npos);
}
