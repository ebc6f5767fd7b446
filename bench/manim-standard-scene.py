from manim import *


class Standard(Scene):
    def construct(self):
        title = Text("videograph", font_size=48).to_edge(UP)
        square = Square(color=BLUE, fill_opacity=0.5)
        self.play(Write(title), Create(square))
        self.play(Transform(square, MathTex(r"e^{i\pi} + 1 = 0", font_size=72)))
        circle = Circle(color=YELLOW, fill_opacity=0.3).shift(RIGHT * 3)
        self.play(square.animate.shift(LEFT * 2.5), GrowFromCenter(circle))
        self.wait(0.5)
