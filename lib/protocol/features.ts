/** Feature masks for people: the names of the set bits, for logs. */

/** Names of the bits of `mask` that `table` (a name -> bit number map) knows. */
export function featureNames(mask: bigint, table: Record<string, number>): string[] {
  const names: string[] = [];
  for (const [name, n] of Object.entries(table)) if ((mask >> BigInt(n)) & 1n) names.push(name);
  return names;
}
