// hubbub.js as an ES module: import { Hubbub } from "/static/hubbub/hubbub.mjs";
// (Loading hubbub.js runs it once and sets self.Hubbub; both forms share that one class.)
import "./hubbub.js";

export const Hubbub = self.Hubbub;
export default Hubbub;
