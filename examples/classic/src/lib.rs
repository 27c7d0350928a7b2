//! The classic MCP example server, as a Berth WebAssembly guest: a typed function with a doc
//! comment is a tool.
//!
//! - tools: `add`, `word_count` (structured output), `slow_count` (progress notifications) and
//!   `echo` (plain text, for benchmarks);
//! - the resource template `greeting://{name}` (with completion of `name`);
//! - the prompt `code_review` (arguments `code`, optional `language`, with completion).

use berth_guest::prelude::*;
use schemars::JsonSchema;
use serde::Serialize;

/// Adds two numbers.
#[tool(read_only, idempotent)]
fn add(
    /// The first addend.
    a: f64,
    /// The second addend.
    b: f64,
) -> f64 {
    a + b
}

/// How many words, lines and characters a text has.
#[derive(Serialize, JsonSchema)]
struct WordCount {
    /// Words (runs of non-whitespace).
    words: usize,
    /// Lines.
    lines: usize,
    /// Characters (Unicode scalar values).
    characters: usize,
}

/// Counts the words, lines and characters in a text.
#[tool(read_only)]
fn word_count(
    /// The text to count.
    text: &str,
) -> WordCount {
    WordCount { words: text.split_whitespace().count(), lines: text.lines().count(), characters: text.chars().count() }
}

/// Counts to `steps`, reporting progress after each step.
#[tool(read_only)]
fn slow_count(
    ctx: &Context,
    /// How many steps to take (at most 100).
    steps: u32,
) -> Result<String, Error> {
    if steps == 0 || steps > 100 {
        return Err(Error::tool("steps must be between 1 and 100"));
    }
    for step in 1..=steps {
        ctx.progress(f64::from(step), Some(f64::from(steps)), Some(&format!("Step {step} of {steps}")));
    }
    ctx.info(&format!("counted to {steps}"));
    Ok(format!("Counted to {steps}."))
}

/// Returns the message unchanged.
#[tool(read_only, idempotent)]
fn echo(
    /// The message to echo.
    message: String,
) -> String {
    message
}

/// A personalised greeting.
#[resource(uri = "greeting://{name}", mime_type = "text/plain")]
fn greeting(name: String) -> String {
    format!("Hello, {name}!")
}

const NAMES: [&str; 5] = ["Ada", "Alan", "Grace", "Linus", "Margaret"];

#[completion(resource = "greeting://{name}", argument = "name")]
fn complete_name(request: &CompletionRequest) -> Vec<String> {
    request.filter_prefix(NAMES)
}

/// Asks for a review of a piece of code.
#[prompt(title = "Code review")]
fn code_review(
    /// The code to review.
    code: String,
    /// The language it is written in.
    language: Option<String>,
) -> Vec<PromptMessage> {
    let language = language.unwrap_or_else(|| "code".to_owned());
    vec![PromptMessage::user(format!(
        "Please review this {language}. Point out bugs, unclear names and missing tests, most important first.\n\n```\n{code}\n```"
    ))]
}

const LANGUAGES: [&str; 8] = ["c", "go", "java", "javascript", "python", "ruby", "rust", "typescript"];

#[completion(prompt = "code_review", argument = "language")]
fn complete_language(request: &CompletionRequest) -> Vec<String> {
    request.filter_prefix(LANGUAGES)
}

berth_guest::server! {
    name: "berth-example-classic",
    instructions: "Small demonstration tools: add numbers, count words, greet people, review code.",
    tools: [add, word_count, slow_count, echo],
    resources: [greeting],
    prompts: [code_review],
    completions: [complete_name, complete_language],
}
