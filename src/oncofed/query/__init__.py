"""The federated search query: model, vocabulary, validation, compilation to SQL."""

from oncofed.query.ast import (
    Condition,
    Operation,
    Range,
    SearchEnvelope,
    canonical_json,
    query_hash,
)
from oncofed.query.compile import CompiledQuery, Sql, compile_query, counts_statement
from oncofed.query.counts import DatasetCounts, count_matches
from oncofed.query.validate import Problem, QueryValidationError, parse_query
from oncofed.query.vocabulary import KEYS, KEYS_BY_NAME, KeySpec, vocabulary

__all__ = [
    "KEYS",
    "KEYS_BY_NAME",
    "CompiledQuery",
    "Condition",
    "DatasetCounts",
    "KeySpec",
    "Operation",
    "Problem",
    "QueryValidationError",
    "Range",
    "SearchEnvelope",
    "Sql",
    "canonical_json",
    "compile_query",
    "count_matches",
    "counts_statement",
    "parse_query",
    "query_hash",
    "vocabulary",
]
