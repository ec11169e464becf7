import { createHealthApp } from "../health.ts";

export default createHealthApp();
