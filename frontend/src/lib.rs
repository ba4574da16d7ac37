//! Dockerfile text to kiln's build graph, in BuildKit's three steps:
//!
//! 1. syntax ([`parse`]): a line scanner (directives, escape character, continuations) and a
//!    pest grammar for each instruction's arguments give a [`Dockerfile`] with byte spans;
//! 2. typed instructions ([`instructions::parse`]): argument shapes and flags checked,
//!    instructions grouped into stages;
//! 3. lowering ([`lower`]): ARG/ENV scoping, word expansion ([`shell`]), stages and the
//!    target, image configs and history, and the [`kiln_ir::Graph`] of the needed stages.
//!
//! ```
//! use kiln_frontend::{build_graph, ImageResolver, LowerOptions};
//! struct NoImages;
//! impl ImageResolver for NoImages {
//!     fn resolve(&self, r: &str) -> Result<kiln_ir::ResolvedImage, String> {
//!         Err(format!("no registry for {r}"))
//!     }
//! }
//! let graph = build_graph("FROM scratch\nCOPY app /app\n", &LowerOptions::default(), &NoImages).unwrap();
//! assert_eq!(graph.stages[graph.target].history[0].created_by, "COPY app /app # buildkit");
//! ```

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod ast;
mod error;
mod heredoc;
pub mod instructions;
pub mod lint;
mod lower;
pub mod outline;
mod scanner;
pub mod shell;
mod syntax;

pub use ast::{parse, Args, Directive, Dockerfile, Flag, Heredoc, Instruction, Warning, Word};
pub use error::{line_col, FrontendError, ParseError};
pub use lower::{
    git_context, is_build_platform, local_context_name, lower, named_context_key, ImageResolver,
    LowerOptions, NamedContext,
};

/// [`parse`] then [`lower`].
pub fn build_graph(
    text: &str,
    opts: &LowerOptions,
    resolver: &dyn ImageResolver,
) -> Result<kiln_ir::Graph, FrontendError> {
    lower(&parse(text)?, opts, resolver)
}
