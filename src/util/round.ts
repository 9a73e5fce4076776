/** Round half to even (torch.round, Python 3 round(), nearbyint in the default rounding mode). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // ties toward +inf
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
